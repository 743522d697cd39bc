//! The catdog page: give it photos, see cat or dog. Everything runs in the browser.

mod app;
mod browser;
mod cards;
mod controls;
mod inputs;
mod model;
mod state;
mod teach;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
