//! Unit tests of [`super`]: exit codes and kinds.

use super::*;
use liminix_bundle::wire::ErrorKind;

fn refused(kind: ErrorKind) -> UpdateError {
    UpdateError::Agent {
        kind,
        message: "m".into(),
    }
}

#[test]
fn the_agents_kind_decides_the_exit_code() {
    assert_eq!(refused(ErrorKind::Untrusted).exit_code(), exit::VERIFY);
    assert_eq!(refused(ErrorKind::Epoch).exit_code(), exit::REFUSED);
    assert_eq!(refused(ErrorKind::NoSpace).exit_code(), exit::NO_SPACE);
    assert_eq!(refused(ErrorKind::Busy).exit_code(), exit::BUSY);
    assert_eq!(refused(ErrorKind::Activation).exit_code(), exit::ACTIVATION);
    assert_eq!(refused(ErrorKind::Usage).exit_code(), exit::USAGE);
    // A kind from a newer agent is a plain failure, and is shown as sent.
    let newer = refused(ErrorKind::Other("quantum_flux".into()));
    assert_eq!(newer.exit_code(), exit::FAILURE);
    assert!(newer.to_string().contains("(quantum_flux)"), "{newer}");
}

#[test]
fn the_bootstraps_refusals_have_their_own_codes_and_kinds() {
    let host = || "root@router".to_owned();
    let cpu = UpdateError::UnsupportedCpu {
        host: host(),
        device: "uname -m riscv64".into(),
        carried: "mipsel".into(),
    };
    assert_eq!(cpu.exit_code(), exit::UNSUPPORTED_CPU);
    assert_eq!(exit::UNSUPPORTED_CPU, 9);
    assert_eq!(cpu.kind(), Some("unsupported_cpu"));
    let room = UpdateError::NoRoom {
        host: host(),
        need: 2,
        free: 1,
    };
    assert_eq!(
        (room.exit_code(), room.kind()),
        (exit::NO_SPACE, Some("no_space"))
    );
    let received = |kind: &str| UpdateError::Bootstrap {
        host: host(),
        kind: kind.into(),
        message: "m".into(),
    };
    assert_eq!(received("verify").exit_code(), exit::VERIFY);
    assert_eq!(received("incomplete").exit_code(), exit::VERIFY);
    assert_eq!(received("io").exit_code(), exit::FAILURE);
    assert_eq!(received("io").kind(), Some("bootstrap"));
    let none = UpdateError::NoUsableAgent { host: host() };
    assert_eq!(
        (none.exit_code(), none.kind()),
        (exit::UNREACHABLE, Some("no_agent"))
    );
}

#[test]
fn an_unreachable_device_is_exit_8() {
    let e = UpdateError::NoAgent {
        host: "root@router".into(),
        agent: "liminix-agent".into(),
    };
    assert_eq!(e.exit_code(), exit::UNREACHABLE);
    assert_eq!(exit::UNREACHABLE, 8);
}
