//! The socket-activation variables (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`) read at start into plain data; `ops::systemd` adopts
//! the fds they describe.

/// The socket-activation variables, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// `LISTEN_PID`: the process the fds are meant for.
    pub pid: u32,
    /// `LISTEN_FDS`: how many fds, starting at 3.
    pub fds: u32,
    /// `LISTEN_FDNAMES`, split at `:`; may be shorter than `fds` or empty.
    pub names: Vec<String>,
}

impl Activation {
    /// Reads the variables through `env`; `None` when `LISTEN_FDS` is unset.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Activation>, String> {
        let Some(fds) = env("LISTEN_FDS") else { return Ok(None) };
        let fds = fds.parse().map_err(|_| format!("LISTEN_FDS={fds:?} is not a number"))?;
        let pid = env("LISTEN_PID").unwrap_or_default();
        let pid = pid.parse().map_err(|_| format!("LISTEN_PID={pid:?} is not a process id"))?;
        let names = env("LISTEN_FDNAMES")
            .map(|names| names.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Some(Activation { pid, fds, names }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_parse() {
        let env = |name: &str| match name {
            "LISTEN_FDS" => Some("2".to_owned()),
            "LISTEN_PID" => Some("42".to_owned()),
            "LISTEN_FDNAMES" => Some("https:http".to_owned()),
            _ => None,
        };
        assert_eq!(
            Activation::from_env(env),
            Ok(Some(Activation { pid: 42, fds: 2, names: vec!["https".into(), "http".into()] }))
        );
        assert_eq!(Activation::from_env(|_| None), Ok(None));
        assert!(Activation::from_env(|n| (n == "LISTEN_FDS").then(|| "x".to_owned())).is_err());
    }
}
