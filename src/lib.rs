//! `yandex-token`: gets a Yandex OAuth token for the Direct API with one
//! small HTTPS server (or at a terminal), replacing the nginx + Flask
//! example from Yandex's docs.
//!
//! The folders are floors; each imports only from the floors below it:
//!
//! - [`util`]: encodings, secrets and randomness, time, the logger, errors
//!   at start, endpoints, `sd_notify`, counters.
//! - [`config`]: the option table, parsing, validation, help: plain data.
//! - [`tls`]: the crypto provider, certificates, the server's TLS stream,
//!   the ACME challenge certificates.
//! - [`oauth`]: Yandex OAuth (PKCE, the token client, the flow cookie, the
//!   device flow) and the Direct API check.
//! - [`store`]: `token.json` and `accounts/`: the typed document, the
//!   directory's lock, compare-before-write. No network.
//! - [`keeper`]: what a command is wired with ([`keeper::Keeper`]), and
//!   [`keeper::login`], the one sequence from a grant to a stored, checked
//!   token, run detached from whoever asked.
//! - [`http`]: listeners, connections, the router, the handlers, and
//!   errors turned into responses.
//! - [`ops`]: socket activation, signals, ACME.
//! - [`commands`]: one function per command; `main.rs` calls [`commands::run`].
//!
//! A request flows listener → TLS ([`tls::stream`]) → connection
//! ([`http::server`]) → router ([`http::router`]) → handler
//! ([`http::get_token`]) → login task ([`keeper::login`]) → OAuth client ([`oauth`]) → store
//! ([`store`]).

pub mod commands;
pub mod config;
pub mod http;
pub mod keeper;
pub mod oauth;
pub mod ops;
pub mod store;
pub mod tls;
pub mod util;
