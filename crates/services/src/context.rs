use domain::Role;
use uuid::Uuid;

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub role: Role,
}

/// Who asked, from where: carried from the edge into every audited mutation.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub actor: Option<Actor>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl RequestMeta {
    pub fn with_actor(&self, actor: Actor) -> Self {
        Self { actor: Some(actor), ..self.clone() }
    }

    /// For commands run from the CLI.
    pub fn system() -> Self {
        Self { user_agent: Some("valuva-cli".into()), ..Self::default() }
    }
}
