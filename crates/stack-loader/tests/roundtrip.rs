//! Property: rendering is a fixed point of loading. For any project,
//! load(render(load(f))) renders the same as load(f).

use proptest::prelude::*;

fn load(text: &str, interpolate: bool) -> Result<String, String> {
    let opts = stack_loader::Options {
        working_dir: "/nonexistent/roundtrip".into(),
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        project_name: Some("prop".into()),
        no_interpolate: !interpolate,
        ..Default::default()
    };
    let loaded = stack_loader::load(&opts).map_err(|e| e.to_string())?;
    stack_loader::render::to_yaml(&loaded.project).map_err(|e| e.to_string())
}

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}"
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._/-]{0,12}",
        Just("true".to_string()),
        Just("8080".to_string()),
        Just("1.5".to_string()),
        Just("a: b".to_string()),
        Just("#hash".to_string()),
        Just("line1\nline2".to_string()),
        Just("".to_string()),
        Just("null".to_string()),
    ]
}

/// YAML double-quoted form of any string.
fn q(s: &str) -> String {
    format!("{:?}", s)
}

#[derive(Debug, Clone)]
struct Svc {
    image: String,
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    ports: Vec<(u16, u16, bool)>,
    command: Vec<String>,
    volumes: Vec<(bool, String)>,
    deps: Vec<usize>,
    restart: Option<String>,
}

fn svc() -> impl Strategy<Value = Svc> {
    (
        "[a-z]{1,8}(:[0-9]\\.[0-9])?",
        prop::collection::btree_map("[A-Z][A-Z_]{0,5}", value(), 0..4)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        prop::collection::vec(("[a-z][a-z.]{0,8}", value()), 0..3),
        prop::collection::vec((1u16..60000, 1u16..60000, any::<bool>()), 0..3),
        prop::collection::vec(value(), 0..4),
        prop::collection::vec((any::<bool>(), "/[a-z]{1,6}"), 0..3),
        prop::collection::vec(0usize..8, 0..3),
        prop::option::of(prop_oneof![
            Just("always".to_string()),
            Just("no".to_string()),
            Just("on-failure:3".to_string())
        ]),
    )
        .prop_map(
            |(image, env, labels, ports, command, volumes, deps, restart)| Svc {
                image,
                env,
                labels,
                ports,
                command,
                volumes,
                deps,
                restart,
            },
        )
}

fn render_input(services: &[(String, Svc)]) -> String {
    let mut y = String::from("services:\n");
    for (i, (name, s)) in services.iter().enumerate() {
        y += &format!("  {name}:\n    image: {}\n", q(&s.image));
        if !s.env.is_empty() {
            y += "    environment:\n";
            for (k, v) in &s.env {
                y += &format!("      {k}: {}\n", q(v));
            }
        }
        if !s.labels.is_empty() {
            y += "    labels:\n";
            for (k, v) in &s.labels {
                y += &format!("      - {}\n", q(&format!("{k}={v}")));
            }
        }
        if !s.ports.is_empty() {
            y += "    ports:\n";
            for (p, t, udp) in &s.ports {
                y += &format!("      - \"{p}:{t}{}\"\n", if *udp { "/udp" } else { "" });
            }
        }
        if !s.command.is_empty() {
            y += &format!(
                "    command: [{}]\n",
                s.command
                    .iter()
                    .map(|c| q(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !s.volumes.is_empty() {
            y += "    volumes:\n";
            for (named, target) in &s.volumes {
                let src = if *named {
                    "data".to_string()
                } else {
                    "/srv".to_string()
                };
                y += &format!("      - {src}:{target}\n");
            }
        }
        // Dependencies only on earlier services: acyclic.
        let deps: Vec<&String> = s
            .deps
            .iter()
            .filter(|d| **d < i)
            .map(|d| &services[*d].0)
            .collect();
        if !deps.is_empty() {
            y += &format!(
                "    depends_on: [{}]\n",
                deps.iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(r) = &s.restart {
            y += &format!("    restart: {r}\n");
        }
    }
    y += "volumes:\n  data: {}\n";
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn rendering_is_a_fixed_point(services in prop::collection::btree_map(word(), svc(), 1..6)) {
        let services: Vec<(String, Svc)> = services.into_iter().collect();
        let input = render_input(&services);
        let first = load(&input, true).map_err(|e| TestCaseError::fail(format!("{e}\n{input}")))?;
        let second = load(&first, false).map_err(|e| TestCaseError::fail(format!("{e}\n{first}")))?;
        prop_assert_eq!(&first, &second, "input:\n{}", input);
    }
}

/// The engine's API carries projects as JSON: every corpus project comes
/// back from its JSON as the same project (x- extensions aside, which the
/// model keeps for printing only).
#[test]
fn corpus_projects_survive_json() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus");
    let mut seen = 0;
    for dir in std::fs::read_dir(&corpus).unwrap().flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        let opts = stack_loader::Options {
            working_dir: dir.path(),
            ..Default::default()
        };
        let mut project = match stack_loader::load(&opts) {
            Ok(l) => l.project,
            Err(e) => panic!("{}: {e}", dir.path().display()),
        };
        let json = serde_json::to_string(&project).unwrap();
        let back: stack_model::Project = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{}: {e}\n{json}", dir.path().display()));
        strip_extensions(&mut project);
        assert_eq!(back, project, "{}", dir.path().display());
        seen += 1;
    }
    assert!(seen >= 8, "{seen} corpus projects");
}

fn strip_extensions(p: &mut stack_model::Project) {
    p.extensions = Default::default();
    for s in p.services.values_mut() {
        s.extensions = Default::default();
    }
}
