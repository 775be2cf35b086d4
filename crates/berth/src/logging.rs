//! runc's log formats, which engines parse: JSON lines
//! `{"level":"error","msg":"...","time":"..."}` or logrus-style text.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

struct RuncFormat {
    json: bool,
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = Message::default();
        event.record(&mut message);
        let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let level = level_name(event.metadata().level());
        if self.json {
            let line = serde_json::json!({"level": level, "msg": message.0, "time": time});
            writeln!(writer, "{line}")
        } else {
            writeln!(writer, "time={time:?} level={level} msg={:?}", message.0)
        }
    }
}

/// Sets up logging to `file` (appended) or stderr.
pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> anyhow::Result<()> {
    let level = if debug { Level::DEBUG } else { Level::WARN };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .event_format(RuncFormat {
            json: format == LogFormat::Json,
        });
    match file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log {}: {e}", path.display()))?;
            builder.with_writer(Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
