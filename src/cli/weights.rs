//! Pretrained weights: the bundled default backbone, a checkpoint the user names, and the
//! `weights` commands (import a checkpoint, check one on photos).

use std::path::PathBuf;

use kiln::model::{Arch, Pretrained};

use super::args::WeightsCommand;

/// Pretrained weights: a file the user named, or the default backbone built into the binary.
pub enum WeightsSource {
    File(PathBuf),
    #[cfg(kiln_bundled_weights)]
    Bundled,
}

#[cfg(kiln_bundled_weights)]
static BUNDLED_WEIGHTS: &[u8] = include_bytes!(env!("KILN_BUNDLED_WEIGHTS"));

impl WeightsSource {
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            #[cfg(kiln_bundled_weights)]
            Self::Bundled => "the bundled ImageNet checkpoint".into(),
        }
    }

    fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>, String> {
        match self {
            Self::File(p) => std::fs::read(p).map(Into::into).map_err(|e| format!("reading weights {}: {e}", p.display())),
            #[cfg(kiln_bundled_weights)]
            Self::Bundled => Ok(BUNDLED_WEIGHTS.into()),
        }
    }
}

impl From<PathBuf> for WeightsSource {
    fn from(p: PathBuf) -> Self {
        Self::File(p)
    }
}

/// The default backbone, EfficientNet-Lite0: set-up (`scripts/fetch-assets.sh`) puts its
/// ImageNet checkpoint in assets/, and build.rs builds it into the binary.
pub fn default_weights() -> Result<WeightsSource, String> {
    if let Some(p) = std::env::var_os("KILN_DEFAULT_WEIGHTS") {
        return Ok(WeightsSource::File(PathBuf::from(p)));
    }
    #[cfg(kiln_bundled_weights)]
    return Ok(WeightsSource::Bundled);
    // Built before set-up fetched the assets: look where set-up puts them.
    #[cfg(not(kiln_bundled_weights))]
    {
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        for name in ["efficientnet_lite0.kiln", "efficientnet-lite0-57934424.pth"] {
            if assets.join(name).exists() {
                return Ok(WeightsSource::File(assets.join(name)));
            }
        }
        Err(format!(
            "this kiln was built without the bundled EfficientNet-Lite0 weights and they are not in {}: run `bash scripts/fetch-assets.sh` once (then rebuild to bundle them), pass --weights FILE, or train from scratch with --no-pretrained",
            assets.display()
        ))
    }
}

pub fn read_weights(source: &WeightsSource, arch: Option<&Arch>, device: &burn::tensor::Device) -> Result<(Arch, Pretrained), String> {
    let bytes = source.read()?;
    kiln::export::load_weights(&bytes, arch, device).map_err(|e| format!("{}: {e}", source.describe()))
}

pub fn run(command: WeightsCommand) -> Result<(), String> {
    let cpu = burn::tensor::Device::flex();
    match command {
        WeightsCommand::Import { file, output, arch } => {
            let bytes = std::fs::read(&file).map_err(|e| format!("reading weights {}: {e}", file.display()))?;
            let source = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let (header, backbone) =
                pollster::block_on(kiln::export::import_weights(&bytes, &source, arch.as_ref())).map_err(|e| format!("{}: {e}", file.display()))?;
            super::write_atomic(&output, &backbone)?;
            let classifier = header.imagenet_classes.map(|n| format!(" with its {n}-class classifier")).unwrap_or_default();
            println!("{}: {} weights{classifier}; saved a Kiln backbone to {}", file.display(), header.arch.name(), output.display());
        }
        WeightsCommand::Predict { weights, images, size } => {
            let source = match weights {
                Some(p) => p.into(),
                None => default_weights()?,
            };
            let (arch, model) = read_weights(&source, None, &cpu)?;
            println!("{} ({}), top-5 ImageNet class indices:", source.describe(), arch.name());
            for image in images {
                let bytes = std::fs::read(&image).map_err(|e| format!("reading {}: {e}", image.display()))?;
                let top = pollster::block_on(kiln::pretrained::imagenet_top_k(&model, &bytes, size, 5, &cpu))
                    .map_err(|e| format!("{}: {e}", image.display()))?;
                let top: Vec<String> = top.iter().map(|(i, p)| format!("{i} {p:.3}")).collect();
                println!("  {}: {}", image.display(), top.join(", "));
            }
        }
    }
    Ok(())
}

