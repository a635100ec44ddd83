//! Embeds `web-ui/` (the admin UI and the API docs viewer) in the binary:
//! every file is included with `include_bytes!`, text files compressed here
//! once (gzip), so the gateway never compresses at run time and the
//! appliance needs no files besides the binary (and the Yocto build no
//! Node.js).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web-ui");
    println!("cargo:rerun-if-changed=web-ui");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let gz_dir = out.join("web-ui-gz");
    let _ = std::fs::remove_dir_all(&gz_dir);
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for rel in &files {
        let src = root.join(rel);
        // Directories are watched by their mtime only; name each file too so
        // an edit inside a subdirectory rebuilds.
        println!("cargo:rerun-if-changed={}", src.display());
        let data = std::fs::read(&src).expect("read web-ui file");
        // A file worth compressing is embedded as gzip only (served as it
        // is to the browsers, which all accept gzip, and inflated for the
        // rare client that does not): the binary carries each file once.
        let mut gz = None;
        if worth_compressing(rel) && data.len() > 256 {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&data).expect("gzip in memory");
            let z = enc.finish().expect("gzip in memory");
            if z.len() < data.len() {
                let dst = gz_dir.join(format!("{rel}.gz"));
                std::fs::create_dir_all(dst.parent().expect("has parent")).expect("mkdir");
                std::fs::write(&dst, z).expect("write gz");
                gz = Some(dst);
            }
        }
        let entry = match gz {
            Some(dst) => format!(
                "None, Some(include_bytes!({:?}))",
                dst.display().to_string()
            ),
            None => format!(
                "Some(include_bytes!({:?})), None",
                src.display().to_string()
            ),
        };
        writeln!(code, "    ({rel:?}, {entry}),").expect("write to String");
    }
    code.push_str("]\n");
    std::fs::write(out.join("web_ui_files.rs"), code).expect("write web_ui_files.rs");
}

/// `rel` paths use `/` and skip hidden files (editor swap files, .DS_Store).
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(rel.join("/"));
        }
    }
}

fn worth_compressing(rel: &str) -> bool {
    let ext = rel.rsplit('.').next().unwrap_or("");
    matches!(
        ext,
        "html" | "js" | "mjs" | "css" | "json" | "svg" | "txt" | "md" | "map"
    ) || rel.ends_with("LICENSE")
}
