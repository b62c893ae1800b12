//! Compiles the backend's push protocol (proto/push.proto) into a client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto/push.proto");
    let descriptors = protox::compile(["push.proto"], ["../../proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
