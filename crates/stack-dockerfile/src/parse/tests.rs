use super::*;

fn ok(text: &str) -> Dockerfile {
    match parse(text) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n---\n{text}"),
    }
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(df) => panic!("parse succeeded, wanted an error: {df:#?}\n---\n{text}"),
        Err(e) => e,
    }
}

/// The commands of the only stage of `FROM scratch` followed by `body`.
fn cmds(body: &str) -> Vec<Command> {
    let df = ok(&format!("FROM scratch\n{body}"));
    assert_eq!(df.stages.len(), 1);
    df.stages[0]
        .instructions
        .iter()
        .map(|i| i.command.clone())
        .collect()
}

fn one(body: &str) -> Command {
    let mut c = cmds(body);
    assert_eq!(c.len(), 1, "{c:#?}");
    c.remove(0)
}

fn body_err(body: &str) -> ParseError {
    err(&format!("FROM scratch\n{body}"))
}

fn s(v: &str) -> String {
    v.to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn run(form: Form) -> Run {
    Run {
        form,
        heredocs: vec![],
        mounts: vec![],
        network: None,
        security: None,
    }
}

fn heredoc(name: &str, body: &str, expand: bool) -> Heredoc {
    Heredoc {
        name: s(name),
        body: s(body),
        expand,
    }
}

#[test]
fn minimal() {
    let df = ok("FROM alpine:3.20\n");
    assert_eq!(df.directives, Directives::default());
    assert!(df.global_args.is_empty());
    assert!(df.warnings.is_empty());
    assert_eq!(
        df.stages,
        vec![Stage {
            line: 1,
            base: s("alpine:3.20"),
            name: None,
            platform: None,
            instructions: vec![],
        }]
    );
}

#[test]
fn multi_stage() {
    let df = ok("ARG GO=1.22\n\
         ARG PLATFORM\n\
         FROM --platform=$BUILDPLATFORM golang:${GO} AS Build\n\
         WORKDIR /src\n\
         RUN go build -o /out/app .\n\
         \n\
         from debian:bookworm-slim as runtime\n\
         COPY --from=build /out/app /usr/local/bin/app\n\
         FROM runtime\n\
         CMD [\"app\"]\n");
    assert_eq!(
        df.global_args,
        vec![
            Arg {
                line: 1,
                name: s("GO"),
                default: Some(s("1.22"))
            },
            Arg {
                line: 2,
                name: s("PLATFORM"),
                default: None
            },
        ]
    );
    assert_eq!(df.stages.len(), 3);
    let build = &df.stages[0];
    assert_eq!(build.line, 3);
    assert_eq!(build.base, "golang:${GO}");
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(build.instructions.len(), 2);
    assert_eq!(build.instructions[0].line, 4);
    assert_eq!(build.instructions[0].keyword(), "WORKDIR");
    assert_eq!(build.instructions[1].original, "RUN go build -o /out/app .");
    let runtime = &df.stages[1];
    assert_eq!(
        (runtime.line, runtime.name.as_deref()),
        (7, Some("runtime"))
    );
    assert_eq!(runtime.base, "debian:bookworm-slim");
    match &runtime.instructions[0].command {
        Command::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.sources, strings(&["/out/app"]));
            assert_eq!(c.dest, "/usr/local/bin/app");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(df.stages[2].base, "runtime");
    assert_eq!(df.stages[2].name, None);

    assert_eq!(df.stage("build"), Some(0));
    assert_eq!(df.stage("BUILD"), Some(0));
    assert_eq!(df.stage("runtime"), Some(1));
    assert_eq!(df.stage("2"), Some(2));
    assert_eq!(df.stage("0"), Some(0));
    assert_eq!(df.stage("3"), None);
    assert_eq!(df.stage("nope"), None);
}

#[test]
fn stage_names() {
    assert_eq!(
        ok("FROM a AS x.y_z-1").stages[0].name.as_deref(),
        Some("x.y_z-1")
    );
    let e = err("FROM a AS 1x");
    assert_eq!((e.line, e.instruction.as_deref()), (1, Some("FROM")));
    assert!(e.message.contains("invalid name"), "{e}");
    assert!(err("FROM a AS b/c").message.contains("invalid name"));
    let e = err("FROM a AS one\nFROM b AS ONE\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("duplicate stage name"), "{e}");
    assert!(err("FROM a b").message.contains("one or three"));
    assert!(err("FROM a AS").message.contains("one or three"));
    assert!(err("FROM a AS b c").message.contains("one or three"));
    assert!(err("FROM a IS b").message.contains("AS"));
    assert!(err("FROM").message.contains("one or three"));
    assert!(err("FROM --platform linux/amd64 a")
        .message
        .contains("missing a value"));
    assert!(err("FROM --pull=always a")
        .message
        .contains("unknown flag: --pull"));
}

#[test]
fn no_from() {
    let e = err("");
    assert!(e.message.contains("no FROM"), "{e}");
    assert!(err("# just a comment\n\n").message.contains("no FROM"));
    assert!(err("ARG A=1\nARG B\n").message.contains("no FROM"));
    let e = err("ARG A\nRUN echo hi\nFROM x\n");
    assert_eq!((e.line, e.instruction.as_deref()), (2, Some("RUN")));
    assert!(e.message.contains("FROM"), "{e}");
    assert!(err("ENV A=1\nFROM x")
        .message
        .contains("before the first FROM"));
}

#[test]
fn unknown_instruction() {
    let e = body_err("# comment\nfoo bar\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.instruction.as_deref(), Some("FOO"));
    assert_eq!(e.message, "unknown instruction: FOO");
    assert_eq!(e.to_string(), "line 3: FOO: unknown instruction: FOO");
    assert!(err("RUNN x\nFROM a").message.contains("RUNN"));
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(
        cmds("run a\nRuN b\ncmd c"),
        vec![
            Command::Run(run(Form::Shell(s("a")))),
            Command::Run(run(Form::Shell(s("b")))),
            Command::Cmd(Form::Shell(s("c"))),
        ]
    );
}

#[test]
fn run_forms() {
    assert_eq!(
        one("RUN apk add curl"),
        Command::Run(run(Form::Shell(s("apk add curl"))))
    );
    assert_eq!(
        one("RUN [\"/bin/sh\", \"-c\", \"echo $HOME\"]"),
        Command::Run(run(Form::Exec(strings(&["/bin/sh", "-c", "echo $HOME"]))))
    );
    assert_eq!(
        one("RUN   [ \"a\" ]  "),
        Command::Run(run(Form::Exec(strings(&["a"]))))
    );
    // Not JSON: the shell form, as written.
    assert_eq!(
        one("RUN [not json]"),
        Command::Run(run(Form::Shell(s("[not json]"))))
    );
    assert_eq!(
        one("RUN [\"a\", 'b']"),
        Command::Run(run(Form::Shell(s("[\"a\", 'b']"))))
    );
    assert_eq!(
        one("RUN [\"unclosed\""),
        Command::Run(run(Form::Shell(s("[\"unclosed\""))))
    );
    // JSON, but not all strings: an error.
    assert!(body_err("RUN [\"a\", 1]").message.contains("strings only"));
    assert!(body_err("RUN").message.contains("at least one argument"));
    assert!(body_err("RUN   ").message.contains("at least one argument"));
}

#[test]
fn run_flags() {
    let c = one("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok \\\n    --network=none --security=insecure make");
    assert_eq!(
        c,
        Command::Run(Run {
            form: Form::Shell(s("make")),
            heredocs: vec![],
            mounts: strings(&["type=cache,target=/root/.cache", "type=secret,id=tok"]),
            network: Some(s("none")),
            security: Some(s("insecure")),
        })
    );
    // Values kept as written: quotes and variables too.
    match one("RUN --mount=type=bind,source=\"$SRC dir\",target=/x ls") {
        Command::Run(r) => assert_eq!(
            r.mounts,
            strings(&["type=bind,source=\"$SRC dir\",target=/x"])
        ),
        other => panic!("{other:?}"),
    }
    let e = body_err("RUN --foo=bar make");
    assert_eq!(e.instruction.as_deref(), Some("RUN"));
    assert!(e.message.contains("unknown flag: --foo"), "{e}");
    assert!(body_err("RUN --network=a --network=b x")
        .message
        .contains("duplicate flag"));
    assert!(body_err("RUN --network x")
        .message
        .contains("missing a value"));
    // A `--` ends the flags; later words are the command.
    assert_eq!(
        one("RUN -- --version"),
        Command::Run(run(Form::Shell(s("--version"))))
    );
    // Flags after the first argument are the command's.
    assert_eq!(
        one("RUN ls --all"),
        Command::Run(run(Form::Shell(s("ls --all"))))
    );
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        one("CMD [\"nginx\", \"-g\", \"daemon off;\"]"),
        Command::Cmd(Form::Exec(strings(&["nginx", "-g", "daemon off;"])))
    );
    assert_eq!(
        one("CMD echo \"hi there\""),
        Command::Cmd(Form::Shell(s("echo \"hi there\"")))
    );
    assert_eq!(one("CMD []"), Command::Cmd(Form::Exec(vec![])));
    assert_eq!(
        one("ENTRYPOINT [\"/entry.sh\"]"),
        Command::Entrypoint(Form::Exec(strings(&["/entry.sh"])))
    );
    assert_eq!(
        one("ENTRYPOINT exec top -b"),
        Command::Entrypoint(Form::Shell(s("exec top -b")))
    );
    assert!(body_err("CMD").message.contains("at least one"));
    assert!(body_err("CMD --x=1 a")
        .message
        .contains("unknown flag: --x"));
    assert_eq!(
        one("SHELL [\"powershell\", \"-command\"]"),
        Command::Shell(strings(&["powershell", "-command"]))
    );
    assert!(body_err("SHELL /bin/bash -c").message.contains("JSON"));
    assert!(body_err("SHELL []").message.contains("at least one"));
    assert!(body_err("SHELL [1]").message.contains("strings only"));
}

#[test]
fn env_and_label() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C=three\\ words"),
        Command::Env(pairs(&[
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "three\\ words")
        ]))
    );
    assert_eq!(
        one("ENV PATH=/x:$PATH"),
        Command::Env(pairs(&[("PATH", "/x:$PATH")]))
    );
    assert_eq!(one("ENV EMPTY="), Command::Env(pairs(&[("EMPTY", "")])));
    assert_eq!(
        one("ENV A='x y'\"z\""),
        Command::Env(pairs(&[("A", "'x y'\"z\"")]))
    );
    // The legacy form: the first word, then the rest of the line.
    assert_eq!(
        one("ENV GREETING hello   big world"),
        Command::Env(pairs(&[("GREETING", "hello   big world")]))
    );
    assert_eq!(one("ENV ONE  x=y"), Command::Env(pairs(&[("ONE", "x=y")])));
    assert!(body_err("ENV").message.contains("at least one"));
    assert!(body_err("ENV LONELY").message.contains("two arguments"));
    assert!(body_err("ENV A=1 B").message.contains("can't find ="));
    assert!(body_err("ENV =1").message.contains("blank"));
    assert_eq!(
        one("LABEL org.opencontainers.image.title=\"My app\" version=1.0"),
        Command::Label(pairs(&[
            ("org.opencontainers.image.title", "\"My app\""),
            ("version", "1.0")
        ]))
    );
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME\""),
        Command::Label(pairs(&[("\"com.example.vendor\"", "\"ACME\"")]))
    );
    assert_eq!(
        one("LABEL description a long text"),
        Command::Label(pairs(&[("description", "a long text")]))
    );
    assert!(body_err("LABEL x").message.contains("two arguments"));
    // Continued across lines, with the escape kept where it is not at the end.
    assert_eq!(
        one("LABEL a=1 \\\n      b=2"),
        Command::Label(pairs(&[("a", "1"), ("b", "2")]))
    );
}

#[test]
fn arg() {
    assert_eq!(
        one("ARG a=1 b \"c\"=x"),
        Command::Arg(vec![
            Arg {
                line: 2,
                name: s("a"),
                default: Some(s("1"))
            },
            Arg {
                line: 2,
                name: s("b"),
                default: None
            },
            Arg {
                line: 2,
                name: s("\"c\""),
                default: Some(s("x"))
            },
        ])
    );
    assert_eq!(
        one("ARG V=\"a b\""),
        Command::Arg(vec![Arg {
            line: 2,
            name: s("V"),
            default: Some(s("\"a b\""))
        }])
    );
    assert!(body_err("ARG").message.contains("at least one"));
    assert!(body_err("ARG =x").message.contains("blank"));
}

#[test]
fn simple_instructions() {
    assert_eq!(
        one("EXPOSE 80/tcp  443 $PORT"),
        Command::Expose(strings(&["80/tcp", "443", "$PORT"]))
    );
    assert!(body_err("EXPOSE").message.contains("at least one"));
    assert_eq!(one("USER app:app"), Command::User(s("app:app")));
    assert_eq!(one("USER   1000  "), Command::User(s("1000")));
    assert_eq!(one("WORKDIR /my dir/x"), Command::Workdir(s("/my dir/x")));
    assert_eq!(one("STOPSIGNAL SIGTERM"), Command::StopSignal(s("SIGTERM")));
    for kw in ["USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"] {
        let e = body_err(kw);
        assert_eq!(e.instruction.as_deref(), Some(kw));
        assert!(e.message.contains("requires"), "{e}");
    }
    let df = ok("FROM a\nMAINTAINER Jane Doe <jane@example.com>\n");
    assert_eq!(
        df.stages[0].instructions[0].command,
        Command::Maintainer(s("Jane Doe <jane@example.com>"))
    );
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].0, 2);
    assert!(df.warnings[0].1.contains("deprecated"));
    assert_eq!(
        one("VOLUME [\"/data\", \"/var/log\"]"),
        Command::Volume(strings(&["/data", "/var/log"]))
    );
    assert_eq!(
        one("VOLUME /data \"/my vol\""),
        Command::Volume(strings(&["/data", "\"/my vol\""]))
    );
    assert!(body_err("VOLUME").message.contains("at least one"));
    assert!(body_err("VOLUME [\"/a\", 2]")
        .message
        .contains("strings only"));
    assert!(body_err("USER --foo x")
        .message
        .contains("USER takes no flags"));
}

#[test]
fn copy_and_add() {
    assert_eq!(
        one("COPY a.txt \"b c.txt\" /dst/"),
        Command::Copy(Copy {
            sources: strings(&["a.txt", "\"b c.txt\""]),
            dest: s("/dst/"),
            ..Copy::default()
        })
    );
    assert_eq!(
        one("COPY [\"src dir/\", \"/app/\"]"),
        Command::Copy(Copy {
            sources: strings(&["src dir/"]),
            dest: s("/app/"),
            ..Copy::default()
        })
    );
    assert_eq!(
        one("COPY --from=builder --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=test/ ./ /app"),
        Command::Copy(Copy {
            sources: strings(&["./"]),
            dest: s("/app"),
            from: Some(s("builder")),
            chown: Some(s("1000:1000")),
            chmod: Some(s("0755")),
            link: true,
            parents: true,
            excludes: strings(&["*.md", "test/"]),
            ..Copy::default()
        })
    );
    match one("COPY --link=false --parents=TRUE a b") {
        Command::Copy(c) => assert!(!c.link && c.parents),
        other => panic!("{other:?}"),
    }
    assert!(body_err("COPY --link=maybe a b")
        .message
        .contains("boolean"));
    assert_eq!(
        one(
            "ADD --checksum=sha256:abc --keep-git-dir --unpack=false https://example.com/x.tgz /x/"
        ),
        Command::Add(Copy {
            sources: strings(&["https://example.com/x.tgz"]),
            dest: s("/x/"),
            checksum: Some(s("sha256:abc")),
            keep_git_dir: true,
            unpack: Some(false),
            ..Copy::default()
        })
    );
    match one("ADD --unpack x.tar /") {
        Command::Add(c) => assert_eq!(c.unpack, Some(true)),
        other => panic!("{other:?}"),
    }
    match one("ADD x.tar /") {
        Command::Add(c) => assert_eq!(c.unpack, None),
        other => panic!("{other:?}"),
    }
    let e = body_err("ADD --from=x a b");
    assert_eq!(e.instruction.as_deref(), Some("ADD"));
    assert!(e.message.contains("unknown flag: --from"), "{e}");
    assert!(body_err("COPY --checksum=x a b")
        .message
        .contains("unknown flag: --checksum"));
    assert!(body_err("COPY onlyone")
        .message
        .contains("source and a destination"));
    assert!(body_err("COPY")
        .message
        .contains("source and a destination"));
    assert!(body_err("ADD [\"a\"]")
        .message
        .contains("source and a destination"));
    assert!(body_err("COPY --from=a --from=b x y")
        .message
        .contains("duplicate flag"));
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD RUN make install"),
        Command::Onbuild(Box::new(Instruction {
            line: 2,
            original: s("RUN make install"),
            command: Command::Run(run(Form::Shell(s("make install")))),
        }))
    );
    match one("onbuild copy --chown=app . /src") {
        Command::Onbuild(i) => match &i.command {
            Command::Copy(c) => {
                assert_eq!((c.chown.as_deref(), c.dest.as_str()), (Some("app"), "/src"))
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(body_err("ONBUILD ONBUILD RUN x")
        .message
        .contains("ONBUILD ONBUILD"));
    assert!(body_err("ONBUILD FROM x")
        .message
        .contains("FROM isn't allowed"));
    assert!(body_err("ONBUILD maintainer x")
        .message
        .contains("MAINTAINER isn't allowed"));
    assert!(body_err("ONBUILD").message.contains("at least one"));
    let e = body_err("ONBUILD BOGUS x");
    assert!(e.message.contains("unknown instruction: BOGUS"), "{e}");
    // A heredoc in the trigger is read as well.
    match one("ONBUILD RUN <<EOF\necho hi\nEOF") {
        Command::Onbuild(i) => match &i.command {
            Command::Run(r) => assert_eq!(r.heredocs, vec![heredoc("EOF", "echo hi\n", true)]),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn healthchecks() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Command::Healthcheck(Healthcheck::Disable)
    );
    assert_eq!(
        one("healthcheck none"),
        Command::Healthcheck(Healthcheck::Disable)
    );
    assert!(body_err("HEALTHCHECK --interval=5s NONE")
        .message
        .contains("no flags"));
    assert!(body_err("HEALTHCHECK NONE now")
        .message
        .contains("no arguments"));
    assert_eq!(
        one("HEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --start-interval=2s --retries=4 CMD curl -f http://localhost/ || exit 1"),
        Command::Healthcheck(Healthcheck::Check {
            test: Form::Shell(s("curl -f http://localhost/ || exit 1")),
            interval: Some(90_000_000_000),
            timeout: Some(3_000_000_000),
            start_period: Some(500_000_000),
            start_interval: Some(2_000_000_000),
            retries: Some(4),
        })
    );
    assert_eq!(
        one("HEALTHCHECK cmd [\"/bin/check\", \"--quick\"]"),
        Command::Healthcheck(Healthcheck::Check {
            test: Form::Exec(strings(&["/bin/check", "--quick"])),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    match one("HEALTHCHECK --interval=0s --timeout=\"10s\" CMD true") {
        Command::Healthcheck(Healthcheck::Check {
            interval, timeout, ..
        }) => {
            assert_eq!((interval, timeout), (None, Some(10_000_000_000)));
        }
        other => panic!("{other:?}"),
    }
    assert!(body_err("HEALTHCHECK --interval=500us CMD true")
        .message
        .contains("1ms"));
    assert!(body_err("HEALTHCHECK --interval=5 CMD true")
        .message
        .contains("missing unit"));
    assert!(body_err("HEALTHCHECK --retries=-1 CMD true")
        .message
        .contains("--retries"));
    assert!(body_err("HEALTHCHECK --retries=x CMD true")
        .message
        .contains("--retries"));
    assert!(body_err("HEALTHCHECK --foo=1 CMD true")
        .message
        .contains("unknown flag: --foo"));
    assert!(body_err("HEALTHCHECK CMD")
        .message
        .contains("missing command"));
    assert!(body_err("HEALTHCHECK CMD []")
        .message
        .contains("missing command"));
    assert!(body_err("HEALTHCHECK RUN true")
        .message
        .contains("unknown type"));
    assert!(body_err("HEALTHCHECK").message.contains("at least one"));
}

#[test]
fn directives() {
    let df = ok("# syntax=docker/dockerfile:1.7\n#ESCAPE = `\n#  check = skip=JSONArgsRecommended;error=true \nFROM a\n");
    assert_eq!(
        df.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(df.directives.escape, '`');
    assert_eq!(
        df.directives.check.as_deref(),
        Some("skip=JSONArgsRecommended;error=true")
    );
    assert_eq!(df.stages[0].line, 4);

    // An explicit backslash.
    assert_eq!(ok("# escape=\\\nFROM a").directives.escape, '\\');
    // After a blank line, an instruction or another comment: a comment.
    assert_eq!(ok("\n# escape=`\nFROM a").directives.escape, '\\');
    assert_eq!(ok("# hello\n# escape=`\nFROM a").directives.escape, '\\');
    assert_eq!(ok("FROM a\n# escape=`\n").directives.escape, '\\');
    // An unknown directive is a comment and ends the directives.
    let df = ok("# unknown=1\n# escape=`\nFROM a");
    assert_eq!(df.directives.escape, '\\');
    // Repeated: an error.
    let e = err("# escape=`\n# ESCAPE=`\nFROM a");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("only one escape"), "{e}");
    assert!(err("# syntax=a\n# syntax=b\nFROM a")
        .message
        .contains("only one syntax"));
    // Bad escape.
    let e = err("# escape=x\nFROM a");
    assert_eq!((e.line, e.instruction.clone()), (1, None));
    assert!(e.message.contains("escape"), "{e}");
    // An empty value is not a directive.
    assert_eq!(ok("# escape=\nFROM a").directives.escape, '\\');
}

#[test]
fn escape_directive_changes_continuation() {
    let df = ok("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n    && echo done\nCOPY C:\\src\\ C:\\dst\\\n");
    let ins = &df.stages[0].instructions;
    assert_eq!(
        ins[0].command,
        Command::Run(run(Form::Shell(s("dir C:\\     && echo done"))))
    );
    assert_eq!(ins[0].line, 3);
    // A backslash at the end is no continuation with the backtick escape.
    match &ins[1].command {
        Command::Copy(c) => {
            assert_eq!(c.sources, strings(&["C:\\src\\"]));
            assert_eq!(c.dest, "C:\\dst\\");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ins[1].line, 5);
}

#[test]
fn comments_and_continuations() {
    let df = ok("FROM a\n  # indented comment\nRUN apt-get update \\\n# a comment inside\n    && apt-get install -y \\\n  # another one\n      curl   \nRUN echo \\  \n  trailing-space-after-escape\n");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(ins[0].line, 3);
    assert_eq!(
        ins[0].original,
        "RUN apt-get update     && apt-get install -y       curl"
    );
    assert_eq!(
        ins[0].command,
        Command::Run(run(Form::Shell(s(
            "apt-get update     && apt-get install -y       curl"
        ))))
    );
    assert_eq!(ins[1].line, 8);
    assert_eq!(
        ins[1].command,
        Command::Run(run(Form::Shell(s("echo   trailing-space-after-escape"))))
    );
    assert!(df.warnings.is_empty());
    // A `#` after the start of a line is not a comment.
    assert_eq!(
        one("RUN echo # not a comment"),
        Command::Run(run(Form::Shell(s("echo # not a comment"))))
    );
}

#[test]
fn empty_continuation_line_warns() {
    let df = ok("FROM a\nRUN a \\\n\n   \n  b\nRUN c");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins[0].command, Command::Run(run(Form::Shell(s("a   b")))));
    assert_eq!(ins[1].line, 6);
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].0, 2);
    assert!(df.warnings[0].1.contains("empty continuation"));
    // A continuation at the end of the file ends the instruction.
    assert_eq!(
        cmds("RUN x \\"),
        vec![Command::Run(run(Form::Shell(s("x"))))]
    );
}

#[test]
fn crlf_and_bom() {
    let df = ok("\u{feff}# escape=`\r\nFROM a\r\nRUN one `\r\n  two\r\nENV A=1\r\n");
    assert_eq!(df.directives.escape, '`');
    let ins = &df.stages[0].instructions;
    assert_eq!(
        ins[0].command,
        Command::Run(run(Form::Shell(s("one   two"))))
    );
    assert_eq!(ins[1].command, Command::Env(pairs(&[("A", "1")])));
    assert_eq!(ins[1].line, 5);
    let df = ok("FROM a\r\nRUN cat <<EOF\r\nline\r\nEOF\r\n");
    match &df.stages[0].instructions[0].command {
        Command::Run(r) => assert_eq!(r.heredocs, vec![heredoc("EOF", "line\n", true)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn line_numbers() {
    let df = ok("\n\n# c\nFROM a\n\nRUN a \\\n b\n\n# c\nUSER x\n");
    assert_eq!(df.stages[0].line, 4);
    let lines: Vec<usize> = df.stages[0].instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, vec![6, 10]);
    let e = err("FROM a\nRUN x \\\n y\nBAD\n");
    assert_eq!(e.line, 4);
}

#[test]
fn heredocs() {
    let c = one("RUN <<EOF\napt-get update\n  apt-get install -y curl\nEOF\n");
    assert_eq!(
        c,
        Command::Run(Run {
            form: Form::Shell(s("<<EOF")),
            heredocs: vec![heredoc(
                "EOF",
                "apt-get update\n  apt-get install -y curl\n",
                true
            )],
            ..run(Form::Shell(s("")))
        })
    );
    // After the heredoc, instructions go on, with their own lines.
    let df = ok("FROM a\nRUN python3 <<'PY'\nprint(\"$HOME\")\n# not a comment \\\nPY\nUSER x\n");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(
        ins[0].command,
        Command::Run(Run {
            heredocs: vec![heredoc(
                "PY",
                "print(\"$HOME\")\n# not a comment \\\n",
                false
            )],
            ..run(Form::Shell(s("python3 <<'PY'")))
        })
    );
    assert_eq!(
        (ins[1].line, ins[1].command.clone()),
        (6, Command::User(s("x")))
    );

    // Several on one line, in order; `<<-` strips leading tabs.
    let c = one("RUN <<-A cat - /dev/fd/3 3<<\"B\"\n\tfirst\n\t\tsecond\n\tA\n\tkept tab\nB\n");
    assert_eq!(
        c,
        Command::Run(Run {
            heredocs: vec![
                heredoc("A", "first\nsecond\n", true),
                heredoc("B", "\tkept tab\n", false)
            ],
            ..run(Form::Shell(s("<<-A cat - /dev/fd/3 3<<\"B\"")))
        })
    );
    // `<<-"X"` is quoted and chomped.
    match one("RUN sh <<-\"X\"\n\techo $A\n\tX") {
        Command::Run(r) => assert_eq!(r.heredocs, vec![heredoc("X", "echo $A\n", false)]),
        other => panic!("{other:?}"),
    }
    // The terminator must match exactly (no leading/trailing spaces without `-`).
    match one("RUN cat <<EOF\n EOF\nEOF \nEOF") {
        Command::Run(r) => assert_eq!(r.heredocs, vec![heredoc("EOF", " EOF\nEOF \n", true)]),
        other => panic!("{other:?}"),
    }
    // An empty body.
    match one("RUN cat <<EOF\nEOF") {
        Command::Run(r) => assert_eq!(r.heredocs, vec![heredoc("EOF", "", true)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredoc_lookalikes() {
    // Quoted, glued to a word, in the exec form, or in another instruction: no heredoc.
    assert_eq!(
        one("RUN echo \"<<EOF\""),
        Command::Run(run(Form::Shell(s("echo \"<<EOF\""))))
    );
    assert_eq!(
        one("RUN echo a<<b"),
        Command::Run(run(Form::Shell(s("echo a<<b"))))
    );
    assert_eq!(
        one("RUN [\"cat\", \"<<EOF\"]"),
        Command::Run(run(Form::Exec(strings(&["cat", "<<EOF"]))))
    );
    assert_eq!(
        one("RUN echo $((1<<2))"),
        Command::Run(run(Form::Shell(s("echo $((1<<2))"))))
    );
    // As in BuildKit, a word starting with `<<` is a heredoc, whatever follows.
    assert!(body_err("RUN echo $((1 <<2))").message.contains("<<2))"));
    assert_eq!(
        one("RUN cat <<<word"),
        Command::Run(run(Form::Shell(s("cat <<<word"))))
    );
    assert_eq!(
        one("CMD cat <<EOF"),
        Command::Cmd(Form::Shell(s("cat <<EOF")))
    );
    assert_eq!(
        one("LABEL a=<<EOF"),
        Command::Label(pairs(&[("a", "<<EOF")]))
    );
}

#[test]
fn heredoc_unterminated() {
    let e = body_err("RUN true\nRUN cat <<EOF\nline one\nline two\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.instruction.as_deref(), Some("RUN"));
    assert!(e.message.contains("<<EOF"), "{e}");
    assert!(e.message.contains("line 3"), "{e}");
    // The second of two missing.
    let e = body_err("COPY <<A <<B /x/\na\nA\nb\n");
    assert_eq!(e.instruction.as_deref(), Some("COPY"));
    assert!(e.message.contains("<<B"), "{e}");
    // `<<-` does not strip spaces from the terminator.
    assert!(body_err("RUN cat <<-EOF\n  EOF\n")
        .message
        .contains("unterminated"));
}

#[test]
fn copy_heredocs() {
    let c = one("COPY --chmod=0644 <<one.txt <<\"two.txt\" extra.txt /dst/\nfirst $X\none.txt\nsecond\ntwo.txt\n");
    assert_eq!(
        c,
        Command::Copy(Copy {
            sources: strings(&["extra.txt"]),
            dest: s("/dst/"),
            heredocs: vec![
                heredoc("one.txt", "first $X\n", true),
                heredoc("two.txt", "second\n", false)
            ],
            chmod: Some(s("0644")),
            ..Copy::default()
        })
    );
    match one("ADD <<EOF /etc/motd\nhello\nEOF") {
        Command::Add(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(c.dest, "/etc/motd");
            assert_eq!(c.heredocs, vec![heredoc("EOF", "hello\n", true)]);
        }
        other => panic!("{other:?}"),
    }
    assert!(body_err("COPY a <<EOF\nx\nEOF")
        .message
        .contains("destination"));
}

#[test]
fn flags_in_quotes() {
    match one("COPY --chown=\"app user\" --exclude='a b' x y") {
        Command::Copy(c) => {
            assert_eq!(c.chown.as_deref(), Some("\"app user\""));
            assert_eq!(c.excludes, strings(&["'a b'"]));
            assert_eq!(c.sources, strings(&["x"]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mounts() {
    let m = mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000,from=base,source=/c,ro").unwrap();
    assert_eq!(
        m,
        Mount {
            kind: MountKind::Cache,
            target: Some(s("/root/.cache")),
            source: Some(s("/c")),
            from: Some(s("base")),
            read_only: Some(true),
            id: Some(s("pip")),
            sharing: Sharing::Locked,
            mode: Some(0o755),
            uid: Some(1000),
            gid: Some(1000),
            required: false,
            size: None,
            env: None,
        }
    );
    let m = mount("target=/src").unwrap();
    assert_eq!(
        (m.kind, m.target.as_deref(), m.read_only),
        (MountKind::Bind, Some("/src"), None)
    );
    assert_eq!(mount("type=bind,dst=/a,rw").unwrap().read_only, Some(false));
    assert_eq!(
        mount("type=bind,destination=/a,readwrite=false")
            .unwrap()
            .read_only,
        Some(true)
    );
    assert_eq!(
        mount("type=bind,target=/a,readonly=false")
            .unwrap()
            .read_only,
        Some(false)
    );
    assert_eq!(
        mount("TYPE=Bind,Target=/a,src=x")
            .unwrap()
            .source
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        mount("type=tmpfs,target=/tmp,size=64m").unwrap().size,
        Some(64 << 20)
    );
    assert_eq!(
        mount("type=tmpfs,target=/tmp,size=1024").unwrap().size,
        Some(1024)
    );
    assert_eq!(
        mount("type=tmpfs,target=/tmp,size=1.5g").unwrap().size,
        Some(3 << 29)
    );
    assert_eq!(
        mount("type=tmpfs,target=/tmp,size=2GiB").unwrap().size,
        Some(2 << 30)
    );

    let secret =
        mount("type=secret,id=aws,target=/root/.aws/credentials,required,env=AWS").unwrap();
    assert_eq!(
        (
            secret.kind,
            secret.id.as_deref(),
            secret.required,
            secret.env.as_deref()
        ),
        (MountKind::Secret, Some("aws"), true, Some("AWS"))
    );
    assert_eq!(
        mount("type=secret,target=/run/secrets/token")
            .unwrap()
            .id
            .as_deref(),
        Some("token")
    );
    assert!(!mount("type=secret,required=false,id=x").unwrap().required);
    assert_eq!(mount("type=secret,env=TOKEN,id=tok").unwrap().target, None);
    let ssh = mount("type=ssh").unwrap();
    assert_eq!(
        (ssh.kind, ssh.id.as_deref(), ssh.target),
        (MountKind::Ssh, Some("default"), None)
    );
    assert_eq!(
        mount("type=ssh,id=gh,required=true").unwrap().id.as_deref(),
        Some("gh")
    );
    // CSV quoting: a comma inside a quoted field.
    assert_eq!(
        mount("type=bind,\"source=a,b\",target=/x")
            .unwrap()
            .source
            .as_deref(),
        Some("a,b")
    );

    let bad: &[(&str, &str)] = &[
        ("type=nfs,target=/x", "unsupported mount type"),
        ("type=bind", "requires a target"),
        ("type=cache", "requires a target"),
        ("type=tmpfs,size=1m", "requires a target"),
        ("type=bind,target=/x,colour=red", "colour"),
        ("type=bind,target=/x,ro=maybe", "ro"),
        ("type=cache,target=/x,sharing=everyone", "sharing"),
        ("type=bind,target=/x,sharing=locked", "sharing"),
        ("type=cache,target=/x,mode=999", "mode"),
        ("type=cache,target=/x,uid=-1", "uid"),
        ("type=cache,target=/x,gid=x", "gid"),
        ("type=bind,target=/x,mode=0644", "mode/uid/gid"),
        ("type=bind,target=/x,required", "required"),
        ("type=cache,target=/x,size=1m", "size"),
        ("type=tmpfs,target=/x,size=lots", "size"),
        ("type=bind,target=/x,env=A", "env"),
        ("type=secret", "id"),
        ("type=secret,id=a,from=b", "from"),
        ("type=bind,target", "target"),
        ("type=bind,\"target=/x", "quote"),
    ];
    for (value, word) in bad {
        match mount(value) {
            Err(e) => assert!(e.contains(word), "mount {value:?}: {e:?} lacks {word:?}"),
            Ok(m) => panic!("mount {value:?} parsed: {m:?}"),
        }
    }
    assert_eq!(
        parse_mount("type=cache,target=/x").unwrap().kind,
        MountKind::Cache
    );
}

#[test]
fn durations() {
    let good: &[(&str, u64)] = &[
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("1ns", 1),
        ("1us", 1_000),
        ("1µs", 1_000),
        ("1μs", 1_000),
        ("500ms", 500_000_000),
        ("30s", 30_000_000_000),
        ("1m30s", 90_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("1.000000001s", 1_000_000_001),
        ("1h1m1s1ms1us1ns", 3_661_001_001_001),
        ("0.1234567891s", 123_456_789),
        ("2562047h", 2_562_047 * 3_600_000_000_000),
    ];
    for (s, want) in good {
        assert_eq!(duration(s), Ok(*want), "duration {s:?}");
    }
    for bad in [
        "", "1", "s", "1x", "1.5", ".s", "-1s", "1s2", "1 s", "++1s", "3000000h", "1e3s", " 1s",
    ] {
        assert!(duration(bad).is_err(), "duration {bad:?} accepted");
    }
    assert_eq!(parse_duration("1m"), Ok(60_000_000_000));
}

#[test]
fn words_splitting() {
    assert_eq!(
        split_words("a  'b c' \"d\\\" e\" f\\ g", '\\'),
        strings(&["a", "'b c'", "\"d\\\" e\"", "f\\ g"])
    );
    assert_eq!(split_words("  ", '\\'), Vec::<String>::new());
    assert_eq!(split_words("x\\", '\\'), strings(&["x"]));
    assert_eq!(split_words("'a\\' b", '\\'), strings(&["'a\\'", "b"]));
    assert_eq!(split_words("\"\" x", '\\'), strings(&["\"\"", "x"]));
    assert_eq!(split_words("a`  b", '`'), strings(&["a` ", "b"]));
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SAMPLE: &str = "\u{feff}# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine\nFROM --platform=$P ${BASE} AS build\nRUN --mount=type=cache,target=/c <<-EOF\n\techo \"$HOME\"\n\tEOF\nCOPY <<a.txt [\"x\"] /y\nhi\na.txt\nENV A=1 B='2 3' \\\n  # c\n  C=\"4\"\nLABEL k v\nONBUILD RUN x\nHEALTHCHECK --interval=1s CMD [\"true\"]\nEXPOSE 80\nVOLUME [\"/v\"]\nSHELL [\"sh\", \"-c\"]\nCMD echo `\\`x\r\nADD --unpack=true a b\nUSER u\nWORKDIR /w\nSTOPSIGNAL 9\nENTRYPOINT [\"e\"]\nMAINTAINER m\n";

#[test]
fn no_panic_on_prefixes_and_mangling() {
    let samples = [
        SAMPLE,
        "# escape=`\nFROM a\nRUN x `\n y\nCOPY <<\"E\" <<-F /\nE\n\tF\n",
    ];
    for sample in samples {
        let chars: Vec<char> = sample.chars().collect();
        for end in 0..=chars.len() {
            let prefix: String = chars[..end].iter().collect();
            let _ = parse(&prefix);
        }
        let alphabet: Vec<char> = "\\`\"'$<-#[]{}=, \t\r\n\u{feff}aZ09:/*?!µ"
            .chars()
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut mangled = chars.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(mangled.len());
                match rng.below(3) {
                    0 => mangled[at] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        mangled.remove(at);
                    }
                    _ => {
                        let other = rng.below(mangled.len());
                        mangled.swap(at, other);
                    }
                }
                if mangled.is_empty() {
                    break;
                }
            }
            let text: String = mangled.iter().collect();
            if let Ok(df) = parse(&text) {
                for stage in &df.stages {
                    for ins in &stage.instructions {
                        if let Command::Run(r) = &ins.command {
                            for m in &r.mounts {
                                let _ = mount(m);
                            }
                        }
                    }
                }
            }
            let _ = expand::word(&text, '\\', &|_| Some("v".into()));
            let _ = expand::words(&text, '`', &|_| None);
            let _ = mount(&text);
            let _ = duration(&text);
        }
    }
}

#[test]
fn sample_parses() {
    let df = ok(SAMPLE);
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.global_args.len(), 1);
    let ins = &df.stages[0].instructions;
    let keywords: Vec<&str> = ins.iter().map(|i| i.keyword()).collect();
    assert_eq!(
        keywords,
        vec![
            "RUN",
            "COPY",
            "ENV",
            "LABEL",
            "ONBUILD",
            "HEALTHCHECK",
            "EXPOSE",
            "VOLUME",
            "SHELL",
            "CMD",
            "ADD",
            "USER",
            "WORKDIR",
            "STOPSIGNAL",
            "ENTRYPOINT",
            "MAINTAINER"
        ]
    );
    // COPY with a heredoc and then a JSON-looking word: words, not JSON.
    match &ins[1].command {
        Command::Copy(c) => {
            assert_eq!(c.sources, strings(&["[\"x\"]"]));
            assert_eq!(c.heredocs, vec![heredoc("a.txt", "hi\n", true)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ins[2].command,
        Command::Env(pairs(&[("A", "1"), ("B", "'2 3'"), ("C", "\"4\"")]))
    );
    assert_eq!(ins[2].line, 11);
}
