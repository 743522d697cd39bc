//! The catdog page: give it photos, see cat or dog. Everything runs in the browser. The app
//! lives in the library (`lib.rs`); this only mounts it.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(catdog_web::app::App);
}
