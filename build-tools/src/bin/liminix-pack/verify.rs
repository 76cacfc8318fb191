use std::path::PathBuf;

use liminix_bundle::PublicKey;

#[derive(clap::Args)]
pub struct Args {
    /// Bundle file
    file: PathBuf,
    /// Public key file the bundle must be signed by
    #[arg(long, value_name = "PUBFILE")]
    trust: PathBuf,
}

pub fn run(a: Args) -> super::Result {
    let key = PublicKey::load(&a.trust)?;
    let v = liminix_build_tools::pack::verify(&a.file, &key)?;
    eprintln!(
        "{}: OK, {} store paths and {} images verified, signed by {}",
        a.file.display(),
        v.entries,
        v.images,
        v.signer
    );
    Ok(())
}
