//! Compiles the wire contract with protox (pure Rust), so building Starling needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "starling/v1/events.proto",
        "starling/v1/storage.proto",
        "starling/v1/bandits.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
