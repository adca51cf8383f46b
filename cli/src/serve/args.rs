//! `granular serve`'s arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

pub(super) const USAGE: &str = "\
usage: granular serve [--addr ADDR] [--allow-remote] <dir>

Serves a directory of Granular artifacts (the default `dir` mode's GRANULAR_ARTIFACT_DIR) with
the viewer, and prints one URL per artifact:
  /                  the artifacts, newest first
  /view/<name>       the viewer page of one artifact
  /artifacts/<name>  its raw bytes (a Perfetto trace)

options:
  --addr ADDR        where to listen (default 127.0.0.1:0: loopback, a free port)
  --allow-remote     allow an ADDR that is not loopback (anyone who reaches it reads the
                     artifacts: span names, trace ids, timings; there is no authentication)
  -h, --help         this text
";

/// What `granular serve` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    Serve(Args),
    Help,
}

/// `granular serve`'s settings.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Args {
    pub(super) dir: PathBuf,
    pub(super) addr: SocketAddr,
    pub(super) allow_remote: bool,
}

/// Parses the arguments after `serve`; the error names what was wrong and what was expected.
pub(super) fn parse(args: Vec<String>) -> Result<Parsed, String> {
    let mut dir = None;
    let mut addr: SocketAddr = "127.0.0.1:0".parse().expect("a valid default");
    let mut allow_remote = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--allow-remote" => allow_remote = true,
            "--addr" => {
                let value = inline
                    .or_else(|| args.next())
                    .ok_or("--addr needs a value, e.g. --addr 127.0.0.1:8080")?;
                addr = value.parse().map_err(|_| {
                    format!(
                        "--addr {value:?} is not an address: expected IP:PORT, e.g. 127.0.0.1:8080"
                    )
                })?;
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(format!("unknown option {f:?}"));
            }
            _ if dir.is_some() => {
                return Err(format!(
                    "one directory expected, got a second argument {arg:?}"
                ));
            }
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir =
        dir.ok_or("no directory given: expected the artifact directory (GRANULAR_ARTIFACT_DIR)")?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "--addr {addr} is not a loopback address: the artifacts would be readable by anyone \
             who reaches it; add --allow-remote to serve it anyway"
        ));
    }
    Ok(Parsed::Serve(Args {
        dir,
        addr,
        allow_remote,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn defaults_to_loopback_on_a_free_port() {
        assert_eq!(
            parse_strs(&["/tmp/a"]),
            Ok(Parsed::Serve(Args {
                dir: "/tmp/a".into(),
                addr: "127.0.0.1:0".parse().unwrap(),
                allow_remote: false,
            }))
        );
        assert_eq!(parse_strs(&["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn addr_in_either_form() {
        for args in [
            &["--addr", "127.0.0.1:8080", "d"][..],
            &["--addr=127.0.0.1:8080", "d"],
            &["d", "--addr", "127.0.0.1:8080"],
        ] {
            let Ok(Parsed::Serve(a)) = parse_strs(args) else {
                panic!("{args:?}")
            };
            assert_eq!(a.addr.port(), 8080);
        }
    }

    /// Serving artifacts beyond the host is a decision, not a default.
    #[test]
    fn a_remote_address_needs_allow_remote() {
        let err = parse_strs(&["--addr", "0.0.0.0:8080", "d"]).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(matches!(
            parse_strs(&["--allow-remote", "--addr", "0.0.0.0:8080", "d"]),
            Ok(Parsed::Serve(Args {
                allow_remote: true,
                ..
            }))
        ));
    }

    #[test]
    fn bad_arguments_say_what_was_expected() {
        for (args, needle) in [
            (&[][..], "no directory given"),
            (&["a", "b"], "second argument \"b\""),
            (&["--addr"], "--addr needs a value"),
            (&["--addr", "localhost", "d"], "expected IP:PORT"),
            (&["--port", "1", "d"], "unknown option \"--port\""),
        ] {
            let err = parse_strs(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
