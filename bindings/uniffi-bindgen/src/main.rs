//! `cargo run -p uniffi-bindgen -- generate --library <libstarling_ffi.so> --language kotlin ...`
//!
//! Built from the workspace so the generator is always the uniffi version the library uses.

fn main() {
    uniffi::uniffi_bindgen_main()
}
