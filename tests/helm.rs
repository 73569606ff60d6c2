//! The Helm chart (helm/rowferry): `helm lint --strict`; `helm template` with the default values,
//! with each helm/rowferry/ci/*.yaml and with examples/kubernetes-production.yaml, validated by `kubernetes-validate --strict`; the
//! config.toml each rendering puts in the ConfigMap is accepted by `rowferry check --config-only`
//! with the environment the pod gets from its Secret; passwords never land in the ConfigMap; and
//! the guards fail rendering (a grace period shorter than the drain, a password in `config`).

mod common;

use common::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/helm/rowferry");

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn helm(args: &[&str]) -> Output {
    run(&env("ROWFERRY_TEST_HELM"), args)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each values file of the CI set and the Kubernetes example (none = the defaults).
fn value_files() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(CHART).join("ci"))
        .expect("helm/rowferry/ci")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes-production.yaml"));
    std::iter::once(None).chain(files.into_iter().map(Some)).collect()
}

fn render(values: Option<&Path>, extra: &[&str]) -> Output {
    let mut args = vec!["template", "rf", CHART];
    let path;
    if let Some(v) = values {
        path = v.display().to_string();
        args.extend(["-f", &path]);
    }
    args.extend(extra);
    helm(&args)
}

/// The `config.toml` block of the rendered ConfigMap.
fn config_toml(manifests: &str) -> String {
    let mut lines = manifests.lines().skip_while(|l| l.trim() != "config.toml: |").skip(1);
    let mut out = String::new();
    for line in lines.by_ref() {
        match line.strip_prefix("    ") {
            Some(rest) => {
                out.push_str(rest);
                out.push('\n');
            }
            None if line.trim().is_empty() => out.push('\n'),
            None => break,
        }
    }
    assert!(!out.trim().is_empty(), "no config.toml in:\n{manifests}");
    out
}

#[test]
fn chart_lints_strictly() {
    ok(&helm(&["lint", "--strict", CHART]), "helm lint --strict");
    for values in value_files().into_iter().flatten() {
        ok(&helm(&["lint", "--strict", CHART, "-f", &values.display().to_string()]), "helm lint --strict -f");
    }
}

#[test]
fn every_rendering_validates_and_its_config_is_accepted_by_rowferry() {
    for values in value_files() {
        let what = values.as_ref().map_or("default values".to_string(), |v| v.display().to_string());
        let manifests = ok(&render(values.as_deref(), &[]), &format!("helm template ({what})"));
        let dir = tempfile::tempdir().expect("tempdir");
        let rendered = dir.path().join("rendered.yaml");
        std::fs::write(&rendered, &manifests).expect("write");
        let validated = run(
            &env("ROWFERRY_TEST_KUBE_VALIDATE"),
            &["--strict", "-k", "1.30.0", "--quiet", &rendered.display().to_string()],
        );
        ok(&validated, &format!("kubernetes-validate ({what})"));
        let stdout = String::from_utf8_lossy(&validated.stdout);
        assert!(!stdout.contains("ERROR"), "{what}: {stdout}");

        // What the pod reads: the ConfigMap's file plus the Secret's values as environment.
        let config = config_toml(&manifests);
        for secret in ["src-pw", "reg-pw", "sasl-pw", "password =", "token ="] {
            assert!(!config.contains(secret), "{what}: a secret in the ConfigMap:\n{config}");
        }
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &config).expect("write");
        let checked = Command::new(env!("CARGO_BIN_EXE_rowferry"))
            .args(["check", "--config-only", "--config"])
            .arg(&path)
            .env("ROWFERRY__SOURCE__PASSWORD", "src-pw")
            .env("ROWFERRY__HTTP__TOKEN", "tok")
            .env("ROWFERRY__COLUMNS__HASH_SALT", "salt")
            .envs(manifests.contains("mode = \"external\"").then_some(("ROWFERRY__REGISTRY__PASSWORD", "reg-pw")))
            .output()
            .expect("rowferry");
        ok(&checked, &format!("rowferry check --config-only on the rendered config ({what}):\n{config}"));
        assert!(manifests.contains("kind: StatefulSet") && manifests.contains("replicas: 1"), "{what}");
        assert!(manifests.contains("readOnlyRootFilesystem: true") && manifests.contains("runAsNonRoot: true"));
    }
}

#[test]
fn guards_refuse_unsafe_values() {
    let out = render(None, &["--set", "terminationGracePeriodSeconds=20"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must exceed config.shutdown_timeout_secs"));
    for key in ["config.source.password=x", "config.registry.password=x", "config.http.token=x"] {
        let out = render(None, &["--set", key]);
        assert!(!out.status.success(), "{key} must be refused: passwords belong in secrets");
    }
    let out = render(None, &["--set", "config.source.server_id=0"]);
    assert!(!out.status.success(), "server_id 0 is refused by the values schema");
    let out = render(None, &["--set", "extraVolume[0].name=x"]);
    assert!(!out.status.success(), "a misspelt top-level key is refused, not ignored");
}

#[test]
fn hardened_values_mount_volumes_salt_from_the_secret_and_fence_the_port() {
    let path = Path::new(CHART).join("ci/hardened.yaml");
    let manifests = ok(&render(Some(&path), &[]), "helm template");
    assert!(manifests.contains("kind: NetworkPolicy"), "{manifests}");
    assert!(manifests.contains("mountPath: /etc/rowferry-tls"), "{manifests}");
    assert!(manifests.contains("secretName: mysql-ca"), "{manifests}");
    assert!(manifests.contains("name: ROWFERRY__COLUMNS__HASH_SALT"), "{manifests}");
    assert!(manifests.contains("hash-salt: \"pepper\""), "the Secret carries the salt: {manifests}");
    assert!(!config_toml(&manifests).contains("pepper"), "never in the ConfigMap");
    let defaults = ok(&render(None, &[]), "helm template");
    assert!(!defaults.contains("kind: NetworkPolicy"), "off by default");
}
