//! The HTTP floor: the listeners and accept loops ([`server`]), what each
//! connection is doing, its limits and how it ends when a body is left
//! unread ([`connections`]), the one router ([`router`]), the handlers
//! ([`get_token`], the pages in [`pages`], the demo's stand-in for Yandex
//! in [`demo`]), the exchange limits ([`exchanges`]), the logins a browser
//! may ask about again ([`recent`]), `Accept` read properly ([`accept`]),
//! the shared state ([`app`]), and [`error`], the only place an error
//! becomes a status and a body. [`response`] is the leaf every handler and
//! the router share: the body type and the response helpers. It imports
//! `util`, `config`, `tls`, `oauth`, `store` and `keeper`.

pub mod accept;
pub mod app;
pub mod connections;
pub mod demo;
pub mod error;
pub mod exchanges;
pub mod get_token;
pub mod pages;
pub mod recent;
pub mod response;
pub mod router;
pub mod server;
