//! The catdog page: pick a photo, see cat or dog. Everything runs in the browser.

mod app;
mod browser;
mod model;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
