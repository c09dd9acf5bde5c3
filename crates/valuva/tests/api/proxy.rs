//! A loopback TCP proxy the test controls: lets a test take "the database" away from one app
//! without touching the shared PostgreSQL server other tests use.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2, target) = (up.clone(), cut.clone(), target.to_owned());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    /// Drops every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
