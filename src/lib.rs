//! gradsign — a workflow engine with background job workers for graduate employment
//! signing (线上签约, 线下签约) and destination registration (其他去向登记).
//!
//! # Layout
//! - [`definition`] parses, validates and compiles `workflows/*.toml`;
//! - [`engine`] decides what a transition does (pure) and runs it in one transaction;
//! - [`store`] is the only module that speaks SQL, for SQLite and PostgreSQL alike;
//! - [`jobs`] carries out what happens later: timers and the apalis workers;
//! - [`http`] is the thin axum layer; [`auth`] reads bearer tokens;
//! - [`config`] loads the one configuration; [`clock`] is the injectable time source;
//!   [`private_files`] keeps the data folder readable by the service's user alone;
//! - [`app`] wires them together for `serve`, `worker` and the tests; [`demo`] seeds
//!   the demo records for a first walk.
//!
//! `ARCHITECTURE.md` at the repository root is the map; read it first.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod definition;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod private_files;
pub mod render;
pub mod store;
