//! Multi-call binary (tests and manual use): run as `fw_printenv`, `fw_setenv` or
//! `zyxel-bootconfig` (by symlink name), or `bootenv-tools TOOL ARGS…`.

use std::ffi::OsString;
use std::path::Path;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.remove(0);
    let mut name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !matches!(
        name.as_str(),
        "fw_printenv" | "fw_setenv" | "zyxel-bootconfig"
    ) && !args.is_empty()
    {
        name = args.remove(0).to_string_lossy().into_owned();
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let code = match name.as_str() {
        "fw_printenv" => liminix_bootenv::fw_printenv_main(&args, &mut out, &mut err),
        "fw_setenv" => liminix_bootenv::fw_setenv_main(&args, &mut out, &mut err),
        "zyxel-bootconfig" => liminix_bootenv::zyxel_bootconfig_main(&args, &mut out, &mut err),
        _ => {
            eprintln!("usage: bootenv-tools {{fw_printenv|fw_setenv|zyxel-bootconfig}} ARGS...");
            2
        }
    };
    drop(out);
    std::process::exit(code);
}
