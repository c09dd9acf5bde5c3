//! Outgoing email. Until the SMTP transport and job queue land, messages are written as `.eml`
//! files (RFC 5322) into the outbox directory — the embedded default of EMAIL_OUTBOX_DIR.

use crate::{ServiceError, ServiceResult};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Mailer {
    outbox: PathBuf,
    from: String,
}

impl Mailer {
    pub fn outbox(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self { outbox: dir.into(), from: from.into() }
    }

    pub async fn send(&self, to: &str, subject: &str, body: &str) -> ServiceResult<()> {
        let id = domain::new_id();
        let date = chrono::Utc::now().to_rfc2822();
        let message = format!(
            "Message-ID: <{id}@valuva>\r\nDate: {date}\r\nFrom: {}\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
            self.from,
            body.replace('\n', "\r\n")
        );
        tokio::fs::create_dir_all(&self.outbox).await.map_err(ServiceError::internal)?;
        let path = self.outbox.join(format!("{id}.eml"));
        tokio::fs::write(&path, message).await.map_err(ServiceError::internal)?;
        tracing::info!(path = %path.display(), subject, "email written to outbox");
        Ok(())
    }
}
