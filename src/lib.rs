//! `yandex-token`: gets a Yandex OAuth token for the Direct API with one
//! small HTTPS server, replacing the nginx + Flask example from Yandex's docs.
//!
//! Data flows listener → TLS ([`tls`]) → hyper ([`server`]) → [`routes`] →
//! [`get_token`] (flows in [`pending`]) → [`oauth`] → [`token_store`].
//! [`config`] parses the command line once; [`commands`] runs each command;
//! [`demo`] is the stand-in provider for `yandex-token demo`.

#[cfg(feature = "acme")]
pub mod acme;
pub mod app;
pub mod challenge;
pub mod commands;
pub mod config;
pub mod connections;
pub mod demo;
pub mod direct;
pub mod encoding;
pub mod error;
pub mod exchanges;
pub mod get_token;
pub mod log;
pub mod log_bridge;
pub mod metrics;
pub mod oauth;
pub mod obtain;
pub mod pages;
pub mod pending;
pub mod routes;
pub mod secret;
pub mod server;
pub mod signals;
pub mod status;
pub mod systemd;
pub mod terminal;
pub mod tls;
pub mod tls_stream;
pub mod token_store;
