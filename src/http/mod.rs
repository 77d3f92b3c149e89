//! The HTTP floor: the listeners and accept loops ([`server`]), what each
//! connection is doing and its limits ([`connections`]), the one router
//! ([`router`]), the handlers ([`get_token`], the pages in [`pages`], the
//! demo's stand-in for Yandex in [`demo`]), the exchange limits
//! ([`exchanges`]), the shared state ([`app`]), and [`error`], the only
//! place an error becomes a status and a JSON body. It imports `util`,
//! `config`, `tls`, `oauth` and `store`.

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
