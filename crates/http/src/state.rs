use platform::Config;
use services::{identity::IdentityService, pagination::CursorCodec};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};
use store::Db;

/// Everything a handler may need, built once by the binary and passed in. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub identity: IdentityService,
    pub cursors: CursorCodec,
    pub started: Instant,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        identity: IdentityService,
        cursors: CursorCodec,
    ) -> Self {
        Self {
            config,
            db,
            identity,
            cursors,
            started: Instant::now(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/ready` answers 503 so load balancers drain this instance.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
