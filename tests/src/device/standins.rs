//! Recording stand-ins for the s6 tools and `reboot`.
//!
//! s6-rc is not packaged for Debian, and a real `reboot` would act on the
//! host, so these scripts stand in at the process boundary only: the agent
//! runs them exactly as it would run the real tools, and they append one line
//! per call to `/run/recorded-calls`. `s6-rc-update` also does the one thing
//! of the real tool that the agent later reads back: it repoints the live
//! state's `compiled` link (`/run/s6-rc/compiled`) at the database path it was
//! given, verbatim, as the real one records it.
//!
//! Line format: `ARGV0 ARG…`; for `s6-rc-update -f FILE` the line ends with
//! ` | convfile: LINE1; LINE2` (the conversion file's lines).

pub const RECORD_FILE: &str = "/run/recorded-calls";

pub const S6_RC_UPDATE: &str = r#"#!/bin/sh
# Test stand-in for s6-rc-update (see liminix_tests::device::standins).
live=/run/s6-rc
conv=
dry=
line=s6-rc-update
while getopts nbv:t:l:f: opt; do
  case "$opt" in
    n) dry=1; line="$line -n" ;;
    b) line="$line -b" ;;
    v|t) line="$line -$opt $OPTARG" ;;
    l) live="$OPTARG"; line="$line -l $OPTARG" ;;
    f) conv="$OPTARG"; line="$line -f $OPTARG" ;;
    *) echo "s6-rc-update: usage error" >&2; exit 100 ;;
  esac
done
shift $((OPTIND - 1))
new="$1"
line="$line $*"
if [ -n "$conv" ]; then
  if [ ! -r "$conv" ]; then
    echo "$line" >> /run/recorded-calls
    echo "s6-rc-update: fatal: unable to read $conv" >&2
    exit 111
  fi
  sep=" | convfile: "
  while IFS= read -r l || [ -n "$l" ]; do
    line="$line$sep$l"
    sep="; "
  done < "$conv"
fi
echo "$line" >> /run/recorded-calls
case "$new" in
  /*) ;;
  *) echo "s6-rc-update: fatal: compiled must be an absolute path" >&2; exit 100 ;;
esac
if [ ! -d "$new" ]; then
  echo "s6-rc-update: fatal: unable to read $new" >&2
  exit 111
fi
[ -n "$dry" ] && exit 0
mkdir -p "$live"
ln -sfn "$new" "$live/compiled"
"#;

pub const S6_RC: &str = r#"#!/bin/sh
# Test stand-in for s6-rc (see liminix_tests::device::standins).
echo "s6-rc $*" >> /run/recorded-calls
"#;

pub const REBOOT: &str = r#"#!/bin/sh
# Test stand-in for reboot: records the request, never touches the host.
echo "reboot $*" >> /run/recorded-calls
"#;

/// The conversion-file lines of a recorded `s6-rc-update` call.
pub fn convfile_lines(recorded: &str) -> Option<Vec<String>> {
    if !recorded.starts_with("s6-rc-update ") {
        return None;
    }
    let lines = match recorded.split_once(" | convfile: ") {
        Some((_, rest)) => rest.split("; ").map(str::to_string).collect(),
        None => Vec::new(),
    };
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_convfile() {
        let l = "s6-rc-update -f /tmp/r /nix/store/x-db | convfile: a restart; b restart";
        assert_eq!(convfile_lines(l).unwrap(), vec!["a restart", "b restart"]);
        assert_eq!(
            convfile_lines("s6-rc-update /db").unwrap(),
            Vec::<String>::new()
        );
        assert!(convfile_lines("reboot").is_none());
    }
}
