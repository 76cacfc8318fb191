//! One static binary, several names: the agent answers as the tools Liminix users and scripts
//! already call (`fw_printenv`, `fw_setenv`, `zyxel-bootconfig`, …) when installed under those
//! names as links, so a router needs one binary instead of several C tools.

use std::ffi::OsString;
use std::io::Write;

/// A tool the agent can be invoked as: its name and its entry point (arguments without argv[0]).
pub struct Tool {
    pub name: &'static str,
    pub main: fn(&[OsString], &mut dyn Write, &mut dyn Write) -> i32,
}

/// The names the agent answers to besides `liminix-agent`.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "fw_printenv",
        main: liminix_bootenv::fw_printenv_main,
    },
    Tool {
        name: "fw_setenv",
        main: liminix_bootenv::fw_setenv_main,
    },
    Tool {
        name: "zyxel-bootconfig",
        main: liminix_bootenv::zyxel_bootconfig_main,
    },
    Tool {
        name: "flashcp",
        main: crate::flashops::flashcp_main,
    },
];

/// Names that are subcommands of the agent itself: `levitate ARGS` is
/// `liminix-agent levitate ARGS`, as Liminix users type it.
pub const SUBCOMMANDS: &[&str] = &["levitate"];

/// The subcommand `argv0` names (by its file name), if any.
pub fn subcommand_for(argv0: &std::ffi::OsStr) -> Option<&'static str> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    SUBCOMMANDS.iter().copied().find(|s| *s == name)
}

/// The tool `argv0` names (by its file name), if any.
pub fn tool_for(argv0: &std::ffi::OsStr) -> Option<&'static Tool> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    TOOLS.iter().find(|t| t.name == name)
}

/// Runs a tool with the process's stdout and stderr.
pub fn run(tool: &Tool, args: &[OsString]) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = (tool.main)(args, &mut out, &mut err);
    let _ = out.flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levitate_is_a_subcommand_name_and_not_a_tool() {
        assert_eq!(
            subcommand_for(std::ffi::OsStr::new("/bin/levitate")),
            Some("levitate")
        );
        assert!(tool_for(std::ffi::OsStr::new("levitate")).is_none());
        assert_eq!(subcommand_for(std::ffi::OsStr::new("liminix-agent")), None);
    }
}
