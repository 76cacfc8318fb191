use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the secret key (created with mode 0600; never overwritten)
    #[arg(long, value_name = "FILE")]
    secret: PathBuf,
    /// Where to write the public key
    #[arg(long, value_name = "FILE")]
    public: PathBuf,
}

pub fn run(a: Args) -> super::Result {
    let public = liminix_build_tools::pack::keygen(&a.secret, &a.public)?;
    eprintln!(
        "public key {} written to {}",
        public.to_hex(),
        a.public.display()
    );
    Ok(())
}
