//! SQLite's writer lane: a runtime on a thread of its own for work that holds the one writer
//! connection.
//!
//! Every write waits for the writer, and a transaction keeps it for as long as its task takes
//! to come back between statements. Each statement's answer comes from the connection's own
//! thread, which wakes the waiting task through the request runtime's shared queue, and under
//! load that task then waits behind every request already queued there; so does the task sqlx
//! spawns to hand the connection back (its ping included), and the next writer woken to take
//! it. Work run on the lane waits for nothing but the database: the lane's thread runs nothing
//! else. It is also never cancelled half-way when a client hangs up: a spawned task runs to
//! its end.
//!
//! Written by hand: a current-thread tokio runtime on a named thread is all it takes.

use sea_orm::DbErr;
use std::{future::Future, sync::Arc};
use tokio::{runtime, sync::oneshot};

/// The lane's runtime, stopped when the last [`crate::Db`] holding it is dropped.
#[derive(Debug)]
pub(crate) struct Lane {
    handle: runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl Lane {
    pub(crate) fn start() -> Result<Arc<Self>, DbErr> {
        let failed = |e: std::io::Error| DbErr::Custom(format!("writer lane: {e}"));
        let rt = runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("valuva-writer".into())
            .spawn(move || {
                // Driving the stop signal drives every task spawned on the lane meanwhile.
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_background();
            })
            .map_err(failed)?;
        Ok(Arc::new(Self { handle, _stop: stop }))
    }

    /// Starts `task` on the lane, running beside the jobs.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Runs `job` on the lane and waits for its result. A panic in it resumes here.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl Future<Output = T> + Send + 'static) -> Result<T, DbErr> {
        match self.handle.spawn(job).await {
            Ok(out) => Ok(out),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(DbErr::Custom("the writer lane has stopped".into())),
        }
    }
}
