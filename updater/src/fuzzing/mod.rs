//! Fuzzing past the signature (issue 9, point 7): arbitrary manifests and payloads, signed with
//! a test key, driven through the same code as `liminix-pack verify`, the agent's `receive` and
//! its `apply`, in process, each on a fresh temporary device root. `updater/fuzz` runs
//! [`signed_bundle`] under cargo-fuzz; `tests/fuzz_corpus.rs` runs the fixed corpus in
//! `tests/fuzz-corpus/signed_bundle/` through it with every `cargo test`. Behind the test-only `fuzzing`
//! feature: the agent binary never contains it.
//!
//! The properties, each a panic when broken: no reader panics (overflow checks are on in tests);
//! a manifest out of bounds is refused by all three readers with the validation's own words; and a
//! bundle `verify` accepts is not refused by the agent as corrupt, tampered with or incomplete.

mod bundle;
mod devices;
mod fixture;

use std::io::Cursor;

use liminix_bundle::stream::Header;
use liminix_bundle::wire::ErrorKind;
use liminix_flash::NoProgress;

use crate::apply::{apply_with, ApplyOptions};
use crate::closure::receive::{receive, Events, ReceiveOptions};
pub use bundle::Input;
pub use fixture::Fixture;

/// What each reader made of one bundle: `Ok`, or the error's kind and message.
#[derive(Debug)]
pub struct Outcome {
    /// Length of the bundle stream the input built.
    pub bundle_len: usize,
    /// How the header and manifest read alone (`Header::read`), message on failure.
    pub header: Result<(), String>,
    /// `liminix-pack verify` with the test key.
    pub verify: Result<(), String>,
    pub receive: Result<(), (ErrorKind, String)>,
    pub apply: Result<(), (ErrorKind, String)>,
}

/// Builds a signed bundle from `data`, runs it through all three readers and checks the
/// properties (module docs).
pub fn signed_bundle(data: &[u8]) -> Outcome {
    let fx = Fixture::get();
    let bundle = bundle::build(&mut Input::new(data), fx);
    let outcome = Outcome {
        header: Header::read(&mut bundle.as_slice())
            .map(drop)
            .map_err(|e| e.to_string()),
        verify: verify(fx, &bundle),
        receive: run_receive(fx, &bundle),
        apply: run_apply(fx, &bundle),
        bundle_len: bundle.len(),
    };
    check(&outcome);
    outcome
}

fn verify(fx: &Fixture, bundle: &[u8]) -> Result<(), String> {
    let (dir, _) = fx.device();
    let file = dir.path().join("fuzz.bundle");
    std::fs::write(&file, bundle).expect("writing the bundle file");
    let key = bundle::test_key(fx).public();
    liminix_build_tools::pack::verify(&file, &key)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn run_receive(fx: &Fixture, bundle: &[u8]) -> Result<(), (ErrorKind, String)> {
    let (_dir, root) = fx.device();
    let mut events = Vec::new();
    let opts = ReceiveOptions {
        now: 1_700_000_000,
        delta_max: Some(0),
    };
    receive(
        &root,
        &mut Cursor::new(bundle),
        &mut Events { out: &mut events },
        &opts,
    )
    .map(drop)
    .map_err(|e| (e.kind(), e.to_string()))
}

fn run_apply(fx: &Fixture, bundle: &[u8]) -> Result<(), (ErrorKind, String)> {
    let (_dir, root) = fx.device();
    let opts = ApplyOptions {
        staging: Some(root.join("/run/liminix/staging")),
        ..ApplyOptions::default()
    };
    apply_with(
        &root,
        &mut Cursor::new(bundle),
        &opts,
        &mut devices::SimDevices::new(),
        &mut NoProgress,
    )
    .map(drop)
    .map_err(|e| (e.kind(), e.to_string()))
}

/// The cross-reader properties; panics with the outcome when one breaks.
fn check(o: &Outcome) {
    if let Err(why) = &o.header {
        let refused_alike = o.verify.as_ref().is_err_and(|e| e.contains(why.as_str()))
            && o.receive
                .as_ref()
                .is_err_and(|e| e.1.contains(why.as_str()))
            && o.apply.as_ref().is_err_and(|e| e.1.contains(why.as_str()));
        assert!(refused_alike, "a bad header must be refused alike: {o:?}");
    }
    if o.verify.is_ok() {
        for agent in [&o.receive, &o.apply] {
            if let Err((kind, message)) = agent {
                let damaged = matches!(
                    kind,
                    ErrorKind::Corrupt | ErrorKind::Payload | ErrorKind::Incomplete
                );
                assert!(
                    !damaged,
                    "verify accepted what the agent refuses ({message}): {o:?}"
                );
            }
        }
    }
}
