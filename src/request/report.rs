//! A scan as the `$ometascan_*` and `$ometascan_response_*` variables tell it.

use ometascan_core::{ResultKind, ScanOutcome, Verdict};

/// The scan as the `$ometascan_*` variables tell it.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub result: Option<ResultKind>,
    pub threat: Option<String>,
    pub scan_time: Option<std::time::Duration>,
    pub server: Option<ometascan_core::net::peer::PeerAddr>,
    pub status: Option<u16>,
    /// Objects sent to the scanner (a form's parts, or 1).
    pub objects: usize,
    /// The part of a form that decided, if any.
    pub part: Option<String>,
    /// What the verdict cache did (`None`: no cache here).
    pub cache: Option<ometascan_core::cache::CacheStatus>,
    /// The upload in pieces the request was a piece of.
    pub upload: Option<ometascan_core::UploadReport>,
    /// Where the scan's time went, and the hand-back to nginx.
    pub phases: Option<(ometascan_core::Phases, std::time::Duration)>,
}

impl Report {
    /// `failed`: what a failed scan counts as (`error`, or `unscanned` under
    /// `ometascan_on_error pass`).
    pub fn of(outcome: &ScanOutcome, failed: ResultKind) -> Report {
        Report {
            result: Some(match &outcome.result {
                Ok(v) => v.kind(),
                Err(_) => failed,
            }),
            threat: match &outcome.result {
                Ok(Verdict::Blocked { threat, .. }) => threat.clone(),
                _ => None,
            },
            scan_time: Some(outcome.elapsed),
            server: outcome.server.clone(),
            status: outcome.status,
            objects: outcome.objects,
            part: outcome.part.clone(),
            cache: outcome.cache,
            upload: outcome.upload.as_deref().cloned(),
            phases: Some((outcome.phases, outcome.handback)),
        }
    }
}
