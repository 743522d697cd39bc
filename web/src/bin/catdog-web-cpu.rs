//! The catdog page built without WebGPU (Trunk builds this binary without default features):
//! what browsers with no WebGPU adapter load. The same program as `main.rs`.

fn main() {
    catdog_web::start();
}
