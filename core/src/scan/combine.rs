//! A request's verdict from its objects': blocked if any object is (naming every threat
//! known), failed if any scan failed, the scanner's `400` if it could not parse one, sanitized
//! when the scanner cleaned objects that can be put back as they were (the body as a whole, or
//! parts of a form, which is rebuilt around them), allowed if all are. A sanitized version of
//! something that cannot be put back (text values together, a decoded object) is a failure:
//! the backend would get what the scanner did not clean.
use crate::body::rebuild::{rebuild, Replacement};
use crate::body::RequestBody;
use crate::cache::CacheStatus;
use crate::scan::jobs::Place;
use crate::scan::report::Phases;
use crate::scan::{SanitizedBody, ScanError, ScanOutcome, Verdict};

/// One finished scan of a form.
pub(super) struct Done {
    pub label: String,
    /// Where the object is in the request, when it was scanned as it is there.
    pub place: Option<Place>,
    pub outcome: ScanOutcome,
}

pub(super) enum Combined {
    Decided(Box<ScanOutcome>),
    /// Allowed, some parts sanitized: the form is rebuilt around them ([`rebuilt`]).
    Rebuild(Vec<Done>),
}

/// The request's result from its objects' (see the module docs).
pub(super) fn combine(mut done: Vec<Done>) -> Combined {
    let blocked = done
        .iter()
        .position(|d| matches!(d.outcome.result, Ok(Verdict::Blocked { .. })));
    if let Some(i) = blocked {
        // Every threat known when the scans stopped (those still running were not waited for).
        let threats: Vec<String> = done
            .iter()
            .filter_map(|d| match &d.outcome.result {
                Ok(Verdict::Blocked {
                    threat: Some(t), ..
                }) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let Done {
            label, mut outcome, ..
        } = done.swap_remove(i);
        if let Ok(Verdict::Blocked { threat, .. }) = &mut outcome.result {
            if threats.len() > 1 {
                *threat = Some(threats.join(", "));
            }
        }
        outcome.part = Some(label);
        return Combined::Decided(Box::new(outcome));
    }
    if let Some(i) = done.iter().position(|d| d.outcome.result.is_err()) {
        let Done {
            label, mut outcome, ..
        } = done.swap_remove(i);
        outcome.part = Some(label);
        return Combined::Decided(Box::new(outcome));
    }
    if let Some(i) = done
        .iter()
        .position(|d| matches!(d.outcome.result, Ok(Verdict::BadRequest { .. })))
    {
        let Done {
            label, mut outcome, ..
        } = done.swap_remove(i);
        outcome.part = Some(label);
        return Combined::Decided(Box::new(outcome));
    }
    let mut parts = false;
    let mut whole = None;
    for (i, d) in done.iter().enumerate() {
        match (&d.outcome.result, &d.place) {
            (Ok(Verdict::Sanitized { .. }), Some(Place::Part(_))) => parts = true,
            (Ok(Verdict::Sanitized { .. }), Some(Place::Whole)) => whole = Some(i),
            (Ok(Verdict::Sanitized { .. }), None) => {
                let label = &d.label;
                return Combined::Decided(Box::new(ScanOutcome {
                    part: Some(label.clone()),
                    ..ScanOutcome::failed(ScanError::Protocol(format!(
                        "the scanner sanitized {label}, which cannot be put back into the request"
                    )))
                }));
            }
            _ => {}
        }
    }
    if let Some(i) = whole {
        let d = done.swap_remove(i);
        let mut outcome = d.outcome;
        outcome.queued |= done.iter().any(|d| d.outcome.queued);
        for other in &done {
            outcome.phases.add(&other.outcome.phases);
        }
        return Combined::Decided(Box::new(outcome));
    }
    if parts {
        return Combined::Rebuild(done);
    }
    Combined::Decided(Box::new(allowed(&done)))
}

/// An allowed form: the last server that answered, whether any scan waited, the cache's
/// least favourable status.
fn allowed(done: &[Done]) -> ScanOutcome {
    let last = done.last().map(|d| &d.outcome);
    ScanOutcome {
        result: Ok(Verdict::Allowed),
        server: last.and_then(|o| o.server.clone()),
        status: last.and_then(|o| o.status),
        elapsed: Default::default(),
        queued: done.iter().any(|d| d.outcome.queued),
        objects: 0,
        part: None,
        cache: done
            .iter()
            .fold(None, |c, d| CacheStatus::worst(c, d.outcome.cache)),
        upload: None,
        phases: done.iter().fold(Phases::default(), |mut p, d| {
            p.add(&d.outcome.phases);
            p
        }),
        handback: Default::default(),
    }
}

/// The form `body` with the sanitized parts of `done` put in: a sanitized verdict for the
/// whole request, whose own type and name stay (the parts carry the scanner's).
pub(super) fn rebuilt(body: &RequestBody, done: Vec<Done>) -> ScanOutcome {
    let mut outcome = allowed(&done);
    let mut places = Vec::new();
    let mut answers = Vec::new();
    for d in done {
        if let (
            Ok(Verdict::Sanitized {
                body,
                content_type,
                content_disposition,
                ..
            }),
            Some(Place::Part(place)),
        ) = (d.outcome.result, d.place)
        {
            places.push(place);
            answers.push((body, content_type, content_disposition));
        }
    }
    let replacements: Vec<Replacement<'_>> = places
        .iter()
        .zip(answers)
        .map(
            |(part, (body, content_type, content_disposition))| Replacement {
                part,
                body,
                content_type,
                content_disposition,
            },
        )
        .collect();
    tracing::debug!(
        "form rebuilt around {} sanitized part(s)",
        replacements.len()
    );
    let body = rebuild(body, replacements);
    outcome.result = Ok(Verdict::Sanitized {
        body: SanitizedBody::Parts(body),
        content_type: None,
        content_disposition: None,
        headers: None,
    });
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::multipart::Part;
    use crate::scan::ResponsePage;
    use bytes::Bytes;

    fn outcome(result: Result<Verdict, ScanError>) -> ScanOutcome {
        ScanOutcome {
            result,
            ..ScanOutcome::failed(ScanError::Internal)
        }
    }

    fn done(label: &str, outcome: ScanOutcome) -> Done {
        Done {
            label: label.into(),
            place: None,
            outcome,
        }
    }

    fn blocked(threat: &str) -> ScanOutcome {
        outcome(Ok(Verdict::Blocked {
            page: ResponsePage {
                status: 403,
                headers: vec![],
                body: Bytes::from_static(b"blocked"),
                head_length: None,
            },
            threat: Some(threat.into()),
        }))
    }

    fn sanitized() -> ScanOutcome {
        outcome(Ok(Verdict::Sanitized {
            body: SanitizedBody::Memory(Bytes::from_static(b"clean")),
            content_type: None,
            content_disposition: None,
            headers: None,
        }))
    }

    #[test]
    fn every_blocked_part_known_is_named_in_the_threat_and_the_first_decides() {
        let all = vec![
            done("a", outcome(Ok(Verdict::Allowed))),
            done("b", blocked("Eicar.A")),
            done("c", blocked("Eicar.B")),
        ];
        let Combined::Decided(o) = combine(all) else {
            panic!("not decided");
        };
        assert_eq!(o.part.as_deref(), Some("b"));
        match o.result {
            Ok(Verdict::Blocked { threat, page }) => {
                assert_eq!(threat.as_deref(), Some("Eicar.A, Eicar.B"));
                assert_eq!(page.status, 403);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_part_fails_the_form_and_all_allowed_allow_it() {
        let all = vec![
            done("a", outcome(Ok(Verdict::Allowed))),
            done("b", outcome(Err(ScanError::ReadTimeout))),
        ];
        let Combined::Decided(o) = combine(all) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Err(ScanError::ReadTimeout)));
        let Combined::Decided(o) = combine(vec![done("a", outcome(Ok(Verdict::Allowed)))]) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Ok(Verdict::Allowed)));
    }

    #[test]
    fn a_sanitized_part_is_rebuilt_only_when_it_was_scanned_as_it_is_in_the_body() {
        // The fields together, or a decoded part, have no place: a failure, never a forward.
        let all = vec![done("fields", sanitized())];
        let Combined::Decided(o) = combine(all) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Err(ScanError::Protocol(_))));
        let part = Part {
            headers: vec![],
            head_offset: 0,
            offset: 2,
            len: 3,
            lf: false,
        };
        let all = vec![Done {
            label: "f".into(),
            place: Some(Place::Part(part)),
            outcome: sanitized(),
        }];
        assert!(matches!(combine(all), Combined::Rebuild(_)));
        // The body as a whole sanitized, the rest allowed: the scanner's body goes on.
        let all = vec![
            done("fields", outcome(Ok(Verdict::Allowed))),
            Done {
                label: "the body".into(),
                place: Some(Place::Whole),
                outcome: sanitized(),
            },
        ];
        let Combined::Decided(o) = combine(all) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Ok(Verdict::Sanitized { .. })));
    }
}
