//! Captures what the production log subscriber writes, for PII and secret canary checks.
//!
//! The subscriber is installed once as the process-wide default and writes to whichever
//! capture the current thread has installed (a `#[tokio::test]` runs its tasks on its own
//! thread). A per-thread default subscriber would race with tracing's global callsite cache
//! when tests run in parallel.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    static SINK: RefCell<Option<CapturedLogs>> = const { RefCell::new(None) };
}

/// A shared buffer the production subscriber writes into.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

/// Stops capturing on this thread when dropped.
#[derive(Debug)]
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

impl CapturedLogs {
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Every captured line, parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => panic!("log line is not JSON ({e}): {line}"),
            })
            .collect()
    }

    /// Routes what the production subscriber writes on this thread into this buffer.
    pub fn install(&self) -> CaptureGuard {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(payout_aws::telemetry::subscriber(
                ThreadRouter,
            ));
        });
        SINK.with(|sink| *sink.borrow_mut() = Some(self.clone()));
        CaptureGuard(())
    }

    fn append(&self, buf: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
    }
}

/// Writes to the current thread's capture, or nowhere.
#[derive(Debug, Clone, Copy)]
struct ThreadRouter;

impl Write for ThreadRouter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(capture) = sink.borrow().as_ref() {
                capture.append(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadRouter {
    type Writer = ThreadRouter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
