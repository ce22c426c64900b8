//! The Deeploy API's vocabulary, shared by the oracle that serves it and `r1ctl` that calls it,
//! so both sides agree by construction.
//!
//! It lives here, with the resource types, because every piece is about those resources — the
//! names a kind goes by, where an object lives, the form the oracle stores it in, what an apply
//! did — and none of it does I/O. The request signing that goes with it needs keys and is in
//! `r1_protocol::api_auth`, next to the other signed texts; r1-crds stays free of key handling.
//!
//! * [`kinds`]: the names a kind goes by in URLs and on the command line.
//! * [`object`]: where an object lives ([`object::ObjectKey`]) and its stored form.
//! * [`spec`]: a resource's spec typed by its kind, as stored and compared.
//! * [`outcome`]: what an apply or delete did, and why a set was refused.
//! * [`selector`]: label selectors a list is filtered by (`r1ctl get -l`).
//! * [`wire`]: the JSON bodies of the API and its error codes; [`sessions`]: those of its logs
//!   and exec routes.

pub mod kinds;
pub mod object;
pub mod outcome;
pub mod selector;
pub mod sessions;
pub mod spec;
pub mod wire;
