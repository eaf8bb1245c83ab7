//! A mounted Secret or ConfigMap volume as the kubelet lays it out: each
//! generation in a timestamped directory, `..data` a link to the current
//! one, and every key a link through `..data`; an update swaps `..data`
//! with one rename.

use std::path::{Path, PathBuf};

pub struct Volume {
    dir: PathBuf,
    generation: u32,
}

impl Volume {
    /// Creates `dir` with its first generation of `files` (key, contents).
    pub fn new(dir: &Path, files: &[(&str, &str)]) -> Volume {
        std::fs::create_dir_all(dir).unwrap();
        let mut v = Volume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        let first = v.write_generation(files);
        std::os::unix::fs::symlink(&first, dir.join("..data")).unwrap();
        for (key, _) in files {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        v
    }

    /// The next generation of the same keys, swapped in as the kubelet does
    /// (a new `..data` renamed over the old one), the old one then removed.
    pub fn swap(&mut self, files: &[(&str, &str)]) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        let next = self.write_generation(files);
        std::os::unix::fs::symlink(&next, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }

    /// Writes a timestamped directory; returns its name.
    fn write_generation(&mut self, files: &[(&str, &str)]) -> String {
        self.generation += 1;
        let name = format!(
            "..2026_12_06_01_{:02}_00.{:09}",
            self.generation, self.generation
        );
        let gen = self.dir.join(&name);
        std::fs::create_dir(&gen).unwrap();
        for (key, contents) in files {
            std::fs::write(gen.join(key), contents).unwrap();
        }
        name
    }
}
