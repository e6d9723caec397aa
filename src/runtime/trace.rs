//! Forwards the core's `tracing` events to nginx's error log. Events happen on tokio threads,
//! which must not touch nginx: each becomes a line in the scanner's notice queue, which the
//! nginx thread logs when the eventfd wakes it (at the level the event had).

use std::fmt::Write as _;
use std::sync::Arc;

use ometascan_core::notices::{Level as NoticeLevel, Notices};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The subscriber of a worker.
struct ToErrorLog {
    notices: Arc<Notices>,
    /// The most detailed level nginx's error log takes.
    max: Level,
}

/// The most detailed `tracing` level an nginx log level lets through (`error_log ... LEVEL`).
pub fn max_level(ngx_level: usize) -> Level {
    use ngx::ffi::{NGX_LOG_DEBUG, NGX_LOG_INFO, NGX_LOG_WARN};
    if ngx_level >= NGX_LOG_DEBUG as usize {
        Level::DEBUG
    } else if ngx_level >= NGX_LOG_INFO as usize {
        Level::INFO
    } else if ngx_level >= NGX_LOG_WARN as usize {
        Level::WARN
    } else {
        Level::ERROR
    }
}

/// The nginx log level of a line from the scanner side.
pub fn nginx_level(level: NoticeLevel) -> u32 {
    use ngx::ffi::{NGX_LOG_DEBUG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN};
    match level {
        NoticeLevel::Error => NGX_LOG_ERR,
        NoticeLevel::Warn => NGX_LOG_WARN,
        NoticeLevel::Notice => NGX_LOG_NOTICE,
        NoticeLevel::Info => NGX_LOG_INFO,
        NoticeLevel::Debug => NGX_LOG_DEBUG,
    }
}

/// Installs the worker's subscriber (once per process; a second call is ignored).
pub fn install(notices: Arc<Notices>, max: Level) {
    let _ = tracing::subscriber::set_global_default(ToErrorLog { notices, max });
}

/// The event's message, then its other fields as `name=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, ", {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, ", {}={value}", field.name());
        }
    }
}

impl Subscriber for ToErrorLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(self.max.into())
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = match *event.metadata().level() {
            Level::ERROR => NoticeLevel::Error,
            Level::WARN => NoticeLevel::Warn,
            Level::INFO => NoticeLevel::Info,
            _ => NoticeLevel::Debug,
        };
        self.notices
            .push(level, format!("ometascan: {}{}", line.message, line.fields));
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
