//! [`StartupError`]: everything that can stop a command from starting or
//! finishing, with the context an operator needs ("failed to read
//! certificate certs/fullchain.pem: …").

use std::fmt;

/// Something that keeps a command from starting or finishing: a message with
/// context, and the underlying cause.
#[derive(Debug)]
pub struct StartupError {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StartupError {
    /// An error with context only.
    pub fn msg(context: impl Into<String>) -> Self {
        StartupError { context: context.into(), source: None }
    }

    /// An error with context and its cause.
    pub fn with(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StartupError { context: context.into(), source: Some(source.into()) }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
