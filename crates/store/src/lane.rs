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
//! The lane's thread and the writer connection's thread hand every statement back and forth,
//! one running while the other waits, so they are pinned to one CPU together (the connection
//! is opened on the lane, and a thread starts with the CPUs of the thread that made it). A
//! wake-up then stays on its CPU instead of crossing to the other one, which on a virtual
//! machine is an interrupt through the hypervisor. The pair never runs in parallel with itself,
//! so it loses nothing by sharing a CPU.
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
                if let Some(cpu) = pin_to_one_cpu() {
                    tracing::debug!(cpu, "SQLite writer lane pinned");
                }
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

/// Pins the calling thread to the last CPU it may run on; `None` when it may run on one only
/// (nothing to gain) or the system refuses. A CPU taken away later (a cgroup's set shrinking)
/// makes the kernel move the thread: pinning cannot strand it.
#[cfg(target_os = "linux")]
fn pin_to_one_cpu() -> Option<usize> {
    use nix::{
        sched::{CpuSet, sched_getaffinity, sched_setaffinity},
        unistd::Pid,
    };
    let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::count()).filter(|&c| allowed.is_set(c).unwrap_or(false)).collect();
    let &cpu = cpus.last().filter(|_| cpus.len() > 1)?;
    let mut one = CpuSet::new();
    one.set(cpu).ok()?;
    sched_setaffinity(Pid::from_raw(0), &one).ok()?;
    Some(cpu)
}

#[cfg(not(target_os = "linux"))]
fn pin_to_one_cpu() -> Option<usize> {
    None
}
