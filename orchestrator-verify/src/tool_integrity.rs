//! Whether a tool found in the working tree's own tool directories is the one its package
//! manager installed. A change (an agent) can put anything in `node_modules/.bin` or
//! `.venv/bin`, git ignores both, and a script there that prints a passing report would
//! make the change pass its own checks; such a tool is refused.
//!
//! - `node_modules/.bin/<tool>` must be a link into `node_modules/<package>/` to a file
//!   that the package's `package.json` names in its `bin`.
//! - `<venv>/bin/<tool>` must be listed in the `RECORD` of an installed distribution
//!   (`<venv>/lib/python*/site-packages/*.dist-info/RECORD`) with the SHA-256 its
//!   content still has.
//!
//! What this does not see: a change to the package's own files behind the entry point
//! (npm keeps no per-file hashes). Tools from `PATH`, outside the working tree, are not
//! checked here.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Whether the tool at `tool_dir/program` of `work_dir` is the one its package installed;
/// an error says why it is not.
pub fn check_installed(work_dir: &Path, tool_dir: &str, program: &str) -> Result<(), String> {
    let entry = work_dir.join(tool_dir).join(program);
    let shown = format!("{tool_dir}/{program}");
    if tool_dir.ends_with("node_modules/.bin") {
        node_tool(&entry, &shown)
    } else if tool_dir.ends_with("bin") {
        python_tool(&entry, &shown)
    } else {
        Ok(())
    }
}

/// `node_modules/.bin/<tool>`: a link to a file its package lists in `bin`.
fn node_tool(entry: &Path, shown: &str) -> Result<(), String> {
    let not_installed = |why: String| {
        Err(format!(
            "`{shown}` is not the tool its package installed ({why}); it is not run"
        ))
    };
    let Ok(target) = std::fs::read_link(entry) else {
        return not_installed("it is a file of its own, not a link into its package".into());
    };
    let bin_dir = entry.parent().unwrap_or(Path::new("."));
    let modules = bin_dir.parent().unwrap_or(Path::new("."));
    let target = bin_dir.join(target);
    let Ok(inside) = lexical(&target)
        .strip_prefix(lexical(modules))
        .map(Path::to_owned)
    else {
        return not_installed("its link leads out of node_modules".into());
    };
    // `node_modules/<package>` or `node_modules/@scope/<package>`.
    let mut parts = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let Some(first) = parts.next() else {
        return not_installed("its link leads nowhere".into());
    };
    let package = if first.starts_with('@') {
        format!("{first}/{}", parts.next().unwrap_or_default())
    } else {
        first
    };
    let package_dir = modules.join(&package);
    let manifest = std::fs::read_to_string(package_dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    let Some(manifest) = manifest else {
        return not_installed(format!("`{package}` has no readable package.json"));
    };
    let listed: Vec<&str> = match &manifest["bin"] {
        serde_json::Value::String(one) => vec![one.as_str()],
        serde_json::Value::Object(many) => many.values().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let real = target.canonicalize().ok();
    let named = listed
        .iter()
        .any(|bin| package_dir.join(bin).canonicalize().ok() == real && real.is_some());
    if named {
        Ok(())
    } else {
        not_installed(format!(
            "`{package}` names no such program in its package.json"
        ))
    }
}

/// `<venv>/bin/<tool>`: listed with its current SHA-256 in an installed distribution's
/// RECORD.
fn python_tool(entry: &Path, shown: &str) -> Result<(), String> {
    let venv = entry
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let program = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let content = std::fs::read(entry).map_err(|err| format!("`{shown}` cannot be read: {err}"))?;
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&content));
    let mut listed = false;
    for record in records(venv) {
        let Ok(text) = std::fs::read_to_string(&record) else {
            continue;
        };
        for line in text.lines() {
            let mut fields = line.split(',');
            let (Some(path), Some(hash)) = (fields.next(), fields.next()) else {
                continue;
            };
            let site_packages = record.parent().and_then(Path::parent);
            let names_it = site_packages.is_some_and(|dir| {
                Path::new(path)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy() == program)
                    && lexical(&dir.join(path)) == lexical(entry)
            });
            if !names_it {
                continue;
            }
            listed = true;
            if hash.strip_prefix("sha256=") == Some(digest.as_str()) {
                return Ok(());
            }
        }
    }
    Err(if listed {
        format!("`{shown}` was changed after its package installed it; it is not run")
    } else {
        format!("`{shown}` was not installed by a package (no RECORD lists it); it is not run")
    })
}

/// The `RECORD` files of the distributions installed in the environment at `venv`.
fn records(venv: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(versions) = std::fs::read_dir(venv.join("lib")) else {
        return found;
    };
    for version in versions.flatten() {
        let site = version.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "dist-info") {
                found.push(path.join("RECORD"));
            }
        }
    }
    found
}

/// `path` with `.` and `..` taken out lexically (links are not followed).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn node_tools_must_be_links_their_package_names() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("node_modules");
        fs::create_dir_all(modules.join(".bin")).unwrap();
        fs::create_dir_all(modules.join("jest/bin")).unwrap();
        fs::create_dir_all(modules.join("@scope/tool/cli")).unwrap();
        fs::write(modules.join("jest/bin/jest.js"), "// jest").unwrap();
        fs::write(modules.join("jest/bin/other.js"), "// other").unwrap();
        fs::write(
            modules.join("jest/package.json"),
            r#"{"bin": {"jest": "./bin/jest.js"}}"#,
        )
        .unwrap();
        fs::write(modules.join("@scope/tool/cli/run.js"), "// run").unwrap();
        fs::write(
            modules.join("@scope/tool/package.json"),
            r#"{"bin": "cli/run.js"}"#,
        )
        .unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, modules.join(".bin").join(name)).unwrap();
        };
        link("../jest/bin/jest.js", "jest");
        link("../@scope/tool/cli/run.js", "run");
        link("../jest/bin/other.js", "unlisted");
        link("/bin/true", "outside");
        fs::write(
            modules.join(".bin/shim"),
            "#!/bin/sh\necho 'Tests: 1 passed'\n",
        )
        .unwrap();
        let check = |name: &str| check_installed(dir.path(), "node_modules/.bin", name);
        assert_eq!(check("jest"), Ok(()));
        assert_eq!(check("run"), Ok(()));
        for refused in ["unlisted", "outside", "shim"] {
            let err = check(refused).unwrap_err();
            assert!(
                err.contains("is not the tool its package installed"),
                "{err}"
            );
        }
    }

    #[test]
    fn python_tools_must_match_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join(".venv");
        let site = venv.join("lib/python3.11/site-packages");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::create_dir_all(site.join("pytest-9.2.0.dist-info")).unwrap();
        let script = b"#!/venv/bin/python\nfrom pytest import console_main\nconsole_main()\n";
        fs::write(venv.join("bin/pytest"), script).unwrap();
        let digest =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(script));
        fs::write(
            site.join("pytest-9.2.0.dist-info/RECORD"),
            format!(
                "../../../bin/pytest,sha256={digest},{}\npytest/__init__.py,,\n",
                script.len()
            ),
        )
        .unwrap();
        fs::write(venv.join("bin/pyshim"), "#!/bin/sh\necho '1 passed'\n").unwrap();
        let check = |name: &str| check_installed(dir.path(), ".venv/bin", name);
        assert_eq!(check("pytest"), Ok(()));
        assert!(check("pyshim").unwrap_err().contains("no RECORD lists it"));
        fs::write(venv.join("bin/pytest"), "#!/bin/sh\necho '3 passed'\n").unwrap();
        assert!(check("pytest").unwrap_err().contains("was changed after"));
    }
}
