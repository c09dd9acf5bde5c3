//! Outgoing email, sent only from jobs (never on a request path). SMTP with lettre when
//! `SMTP_URL` is set (behind the email circuit breaker and retry policy); otherwise, the
//! embedded default, each message is written as an `.eml` file into `EMAIL_OUTBOX_DIR`.

pub mod jobs;
pub mod stock_alerts;
pub mod templates;

use crate::{ServiceError, ServiceResult};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use platform::resilience::{CallError, Resilience, Retryable};
use std::{path::PathBuf, sync::Arc};

/// One message, in plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>, Arc<Resilience>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Smtp(..) => "smtp",
            Transport::Files(..) => "files",
        };
        f.debug_struct("Mailer").field("transport", &kind).field("from", &self.from.to_string()).finish()
    }
}

/// A failed SMTP exchange: a permanent (5xx) refusal is not worth retrying.
struct SmtpFailure(lettre::transport::smtp::Error);

impl Retryable for SmtpFailure {
    fn retryable(&self) -> bool {
        !self.0.is_permanent()
    }
}

fn parse_from(from: &str) -> Result<Mailbox, String> {
    from.parse().map_err(|e| format!("EMAIL_FROM {from:?}: {e}"))
}

impl Mailer {
    /// Messages become `.eml` files in `dir` (created if missing).
    pub fn files(dir: impl Into<PathBuf>, from: &str) -> Result<Self, String> {
        let dir = dir.into();
        Ok(Self { transport: Transport::Files(AsyncFileTransport::new(&dir), dir), from: parse_from(from)? })
    }

    /// `url`: `smtp://[user:pass@]host[:port][?tls=required|opportunistic]` (plain, or STARTTLS)
    /// or `smtps://…` (implicit TLS).
    pub fn smtp(url: &str, from: &str, resilience: Arc<Resilience>) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| format!("SMTP_URL: {e}"))?.build();
        Ok(Self { transport: Transport::Smtp(transport, resilience), from: parse_from(from)? })
    }

    pub async fn send(&self, email: &Email) -> ServiceResult<()> {
        let to: Mailbox = email.to.parse().map_err(|e| ServiceError::field("to", format!("{e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(ServiceError::internal)?;
        match &self.transport {
            Transport::Smtp(smtp, resilience) => {
                let sent = resilience.call(|| async { smtp.send(message.clone()).await.map_err(SmtpFailure) }).await;
                match sent {
                    Ok(_) => {
                        tracing::info!(subject = %email.subject, "email sent");
                        Ok(())
                    }
                    Err(CallError::Failed(SmtpFailure(e))) if e.is_permanent() => {
                        Err(ServiceError::bad_request("email_refused", format!("the mail server refused the message: {e}")))
                    }
                    Err(e) => {
                        let why = match e {
                            CallError::Failed(SmtpFailure(e)) => e.to_string(),
                            CallError::Timeout(_) => "timed out".into(),
                            CallError::Open(_) => "circuit breaker open".into(),
                        };
                        Err(ServiceError::Unavailable { code: "dependency_unavailable", detail: format!("email: {why}") })
                    }
                }
            }
            Transport::Files(files, dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(ServiceError::internal)?;
                let id = files.send(message).await.map_err(ServiceError::internal)?;
                tracing::info!(path = %dir.join(format!("{id}.eml")).display(), subject = %email.subject, "email written to outbox");
                Ok(())
            }
        }
    }
}
