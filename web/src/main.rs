//! The catdog page: give it photos, see cat or dog. Everything runs in the browser. The app
//! lives in the library (`lib.rs`); this only starts it.

fn main() {
    catdog_web::start();
}
