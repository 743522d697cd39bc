//! The catdog page built without WebGPU (Trunk builds this binary without default features):
//! what every visit starts unless it asks for WebGPU (index.html). The same program as
//! `main.rs`.

fn main() {
    catdog_web::start();
}
