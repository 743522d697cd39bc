//! The trainer's tests, in one binary (each test binary links Burn: one instead of four saves
//! their link time on every build). Everything runs on real photos, the fixtures under
//! `tests/fixtures`, and most of it through the real `native-trainer` binary.

mod commands;
mod common;
mod data;
mod download;
mod pretrained;
mod runs;
mod transfer;
