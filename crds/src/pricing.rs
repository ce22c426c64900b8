//! The price catalogue and job estimates: price per node per epoch by resource class, times
//! replicas, times prepaid epochs.
//!
//! The catalogue is data (`crds/pricing/catalogue.yaml`, built into the binaries as the default)
//! so that r1ctl and the oracle price a job identically and operators can ship new prices
//! without a rebuild.

use std::path::Path;

use serde::Deserialize;

use crate::job::{DeeployJobSpec, JobType, MIN_DURATION_EPOCHS, Resources};
use crate::quantity::{Quantity, QuantityError};
use crate::usdc::{USDC_DECIMALS, Usdc, UsdcParseError};

/// The catalogue shipped with r1.
pub const BUILTIN_CATALOGUE: &str = include_str!("../pricing/catalogue.yaml");

/// Numeric resource amounts, as placement and pricing compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceAmounts {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk in bytes; `None` when the job leaves it to its class.
    pub disk_bytes: Option<u64>,
    /// Whole GPUs.
    pub gpu: u32,
}

/// A quantity in `spec.resources` that does not parse; `field` is its name under `resources`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {source}")]
pub struct ResourceFieldError {
    /// `cpu`, `memory` or `disk`.
    pub field: &'static str,
    /// What is wrong with the quantity.
    pub source: QuantityError,
}

impl Resources {
    /// Parses every quantity, reporting each field that does not parse.
    pub fn amounts(&self) -> Result<ResourceAmounts, Vec<ResourceFieldError>> {
        let mut errors = Vec::new();
        let mut take = |field, result: Result<u64, QuantityError>| {
            result
                .map_err(|source| errors.push(ResourceFieldError { field, source }))
                .unwrap_or_default()
        };
        let amounts = ResourceAmounts {
            cpu_millis: take("cpu", self.cpu.to_millis()),
            memory_bytes: take("memory", self.memory.to_bytes()),
            disk_bytes: self.disk.as_ref().map(|disk| take("disk", disk.to_bytes())),
            gpu: self.gpu,
        };
        if errors.is_empty() {
            Ok(amounts)
        } else {
            Err(errors)
        }
    }
}

/// One priced resource class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceClass {
    /// Id used by the escrow contract's price table.
    pub id: u8,
    /// Name used in manifests (`spec.resources.class`).
    pub name: String,
    /// Job type the class is sold for.
    pub job_type: JobType,
    /// Largest request the class covers.
    pub limits: ResourceAmounts,
    /// Price of one node for one epoch.
    pub price_per_epoch: Usdc,
}

impl PriceClass {
    /// The first resource in `request` this class is too small for: `(field, requested, limit)`.
    fn shortfall(&self, request: &ResourceAmounts) -> Option<(&'static str, u64, u64)> {
        let limits = &self.limits;
        let disk_limit = limits.disk_bytes.unwrap_or(0);
        [
            ("cpu", request.cpu_millis, limits.cpu_millis),
            ("memory", request.memory_bytes, limits.memory_bytes),
            ("disk", request.disk_bytes.unwrap_or(0), disk_limit),
            ("gpu", u64::from(request.gpu), u64::from(limits.gpu)),
        ]
        .into_iter()
        .find(|(_, requested, limit)| requested > limit)
    }
}

/// The whole price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    /// Fewest epochs a job can be prepaid for.
    pub min_epochs: u32,
    /// Classes in file order.
    pub classes: Vec<PriceClass>,
}

/// Why a catalogue file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file cannot be read.
    #[error("cannot read price catalogue {path}: {source}")]
    Read {
        /// File that was read.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The YAML does not have the catalogue's shape.
    #[error("price catalogue: {0}")]
    Syntax(String),
    /// A class entry is inconsistent.
    #[error("price catalogue: class {class:?}: {reason}")]
    Class {
        /// Name of the class.
        class: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CatalogueFile {
    currency: String,
    decimals: u32,
    min_epochs: u32,
    classes: Vec<ClassFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClassFile {
    id: u8,
    name: String,
    #[serde(rename = "type")]
    job_type: JobType,
    cpu: Quantity,
    memory: Quantity,
    disk: Quantity,
    gpu: u32,
    price_per_epoch: String,
}

impl Catalogue {
    /// The catalogue built into this binary.
    pub fn builtin() -> Result<Self, CatalogueError> {
        Self::from_yaml(BUILTIN_CATALOGUE)
    }

    /// Reads a catalogue file.
    pub fn from_file(path: &Path) -> Result<Self, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses and checks a catalogue: USDC with 6 decimals, unique ids and names, valid amounts.
    pub fn from_yaml(text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile =
            serde_yaml::from_str(text).map_err(|e| CatalogueError::Syntax(e.to_string()))?;
        if file.currency != "USDC" || file.decimals != USDC_DECIMALS {
            return Err(CatalogueError::Syntax(format!(
                "prices must be in USDC with {USDC_DECIMALS} decimals, found {} with {}",
                file.currency, file.decimals
            )));
        }
        if file.min_epochs < MIN_DURATION_EPOCHS {
            return Err(CatalogueError::Syntax(format!(
                "minEpochs {} is below the protocol minimum of {MIN_DURATION_EPOCHS}",
                file.min_epochs
            )));
        }
        let mut classes: Vec<PriceClass> = Vec::with_capacity(file.classes.len());
        for entry in file.classes {
            let class_error = |reason: String| CatalogueError::Class {
                class: entry.name.clone(),
                reason,
            };
            if classes
                .iter()
                .any(|c| c.id == entry.id || c.name == entry.name)
            {
                return Err(class_error(format!(
                    "id {} or name is used twice",
                    entry.id
                )));
            }
            let price: Usdc = entry
                .price_per_epoch
                .parse()
                .map_err(|e: UsdcParseError| class_error(e.to_string()))?;
            if price.units() == 0 {
                return Err(class_error("price must be above zero".into()));
            }
            let limits = Resources {
                class: None,
                cpu: entry.cpu.clone(),
                memory: entry.memory.clone(),
                disk: Some(entry.disk.clone()),
                gpu: entry.gpu,
            }
            .amounts()
            .map_err(|errors| class_error(errors[0].to_string()))?;
            classes.push(PriceClass {
                id: entry.id,
                name: entry.name,
                job_type: entry.job_type,
                limits,
                price_per_epoch: price,
            });
        }
        Ok(Self {
            min_epochs: file.min_epochs,
            classes,
        })
    }

    /// The class named `name`.
    pub fn class(&self, name: &str) -> Option<&PriceClass> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// The class a job is priced under: the one it names, which must fit its type and request,
    /// or else the cheapest class of its type that fits.
    pub fn select(
        &self,
        job_type: JobType,
        class: Option<&str>,
        request: &ResourceAmounts,
    ) -> Result<&PriceClass, PricingError> {
        if let Some(name) = class {
            let chosen = self
                .class(name)
                .ok_or_else(|| PricingError::UnknownClass(name.to_owned()))?;
            if chosen.job_type != job_type {
                return Err(PricingError::WrongType {
                    class: name.to_owned(),
                    class_type: chosen.job_type,
                    job_type,
                });
            }
            if let Some((field, requested, limit)) = chosen.shortfall(request) {
                return Err(PricingError::DoesNotFit {
                    class: name.to_owned(),
                    field,
                    requested,
                    limit,
                });
            }
            return Ok(chosen);
        }
        self.classes
            .iter()
            .filter(|c| c.job_type == job_type && c.shortfall(request).is_none())
            .min_by_key(|c| c.price_per_epoch)
            .ok_or(PricingError::NoClassFits { job_type })
    }

    /// Prices a job: class price × replicas × prepaid epochs.
    pub fn estimate(&self, spec: &DeeployJobSpec) -> Result<Estimate, EstimateError> {
        let request = spec.resources.amounts().map_err(EstimateError::Resources)?;
        let class = self
            .select(spec.job_type, spec.resources.class.as_deref(), &request)
            .map_err(EstimateError::Pricing)?;
        if spec.duration_epochs < self.min_epochs {
            return Err(EstimateError::TooFewEpochs {
                epochs: spec.duration_epochs,
                min: self.min_epochs,
            });
        }
        let per_epoch = class
            .price_per_epoch
            .checked_mul(u64::from(spec.replicas))
            .ok_or(EstimateError::Overflow)?;
        let total = per_epoch
            .checked_mul(u64::from(spec.duration_epochs))
            .ok_or(EstimateError::Overflow)?;
        Ok(Estimate {
            class: class.clone(),
            replicas: spec.replicas,
            epochs: spec.duration_epochs,
            price_per_epoch: per_epoch,
            total,
        })
    }
}

/// Why no class can price a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The named class is not in the catalogue.
    #[error("class {0:?} is not in the price catalogue")]
    UnknownClass(String),
    /// The named class is sold for another job type.
    #[error("class {class:?} is for {} jobs, not {}", class_type.as_str(), job_type.as_str())]
    WrongType {
        /// The class named.
        class: String,
        /// Its job type.
        class_type: JobType,
        /// The job's type.
        job_type: JobType,
    },
    /// The request exceeds the named class on one resource.
    #[error("{} exceeds class {class:?} (at most {})", show(field, *requested), show(field, *limit))]
    DoesNotFit {
        /// The class named.
        class: String,
        /// `cpu`, `memory`, `disk` or `gpu`.
        field: &'static str,
        /// Amount requested (millicores, bytes or GPUs).
        requested: u64,
        /// Class limit, same unit.
        limit: u64,
    },
    /// No class of the job's type is large enough.
    #[error("no {} class in the price catalogue is large enough for this request", job_type.as_str())]
    NoClassFits {
        /// The job's type.
        job_type: JobType,
    },
}

/// Why a job cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstimateError {
    /// A resource quantity does not parse.
    #[error("resources: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Resources(Vec<ResourceFieldError>),
    /// No class fits.
    #[error(transparent)]
    Pricing(PricingError),
    /// Fewer epochs than the catalogue's minimum.
    #[error("durationEpochs {epochs} is below the minimum of {min}")]
    TooFewEpochs {
        /// Epochs requested.
        epochs: u32,
        /// Catalogue minimum.
        min: u32,
    },
    /// The total does not fit in 64 bits of micro-USDC.
    #[error("the total price is too large")]
    Overflow,
}

/// What a job costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// Class the job is priced under.
    pub class: PriceClass,
    /// Replicas (nodes) paid for.
    pub replicas: u32,
    /// Epochs paid in advance.
    pub epochs: u32,
    /// Price of one epoch for all replicas.
    pub price_per_epoch: Usdc,
    /// USDC locked in escrow when the job is created.
    pub total: Usdc,
}

/// Renders an amount in the unit of its resource.
fn show(field: &str, amount: u64) -> String {
    match field {
        "cpu" if amount % 1000 == 0 => format!("{} CPU", amount / 1000),
        "cpu" => format!("{amount}m CPU"),
        "gpu" => format!("{amount} GPU"),
        _ => format!("{} {field}", bytes(amount)),
    }
}

/// Bytes in the largest binary unit that divides them exactly.
fn bytes(amount: u64) -> String {
    for (suffix, shift) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if amount >= 1 << shift && amount % (1 << shift) == 0 {
            return format!("{}{suffix}", amount >> shift);
        }
    }
    format!("{amount}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(cpu: &str, memory: &str, gpu: u32) -> ResourceAmounts {
        Resources {
            class: None,
            cpu: cpu.into(),
            memory: memory.into(),
            disk: None,
            gpu,
        }
        .amounts()
        .unwrap()
    }

    /// Whether `class` covers `req`, read straight off its limits (not through `shortfall`,
    /// which `select` uses): every amount at most the class's; a request naming no disk fits
    /// any class, and a class stating no disk covers none.
    fn covers(class: &PriceClass, req: &ResourceAmounts) -> bool {
        let limits = &class.limits;
        let disk_fits = match req.disk_bytes {
            None => true,
            Some(disk) => disk <= limits.disk_bytes.unwrap_or(0),
        };
        req.cpu_millis <= limits.cpu_millis
            && req.memory_bytes <= limits.memory_bytes
            && req.gpu <= limits.gpu
            && disk_fits
    }

    /// The name of the class a naive walk of the catalogue picks: the cheapest of `ty` that
    /// [`covers`] `req`, the earliest in the file on a tie.
    fn cheapest_cover(catalogue: &Catalogue, ty: JobType, req: &ResourceAmounts) -> Option<String> {
        let mut best: Option<&PriceClass> = None;
        for class in &catalogue.classes {
            if class.job_type != ty || !covers(class, req) {
                continue;
            }
            if best.is_none_or(|b| class.price_per_epoch < b.price_per_epoch) {
                best = Some(class);
            }
        }
        best.map(|class| class.name.clone())
    }

    #[test]
    fn builtin_catalogue_loads() {
        let catalogue = Catalogue::builtin().unwrap();
        assert_eq!(catalogue.min_epochs, 30);
        assert_eq!(
            catalogue.class("entry").unwrap().price_per_epoch,
            Usdc(375_000)
        );
        assert!(catalogue.classes.len() >= 10);
    }

    #[test]
    fn cheapest_fitting_class_is_chosen() {
        let catalogue = Catalogue::builtin().unwrap();
        let pick = |cpu, mem, gpu, ty| {
            catalogue
                .select(ty, None, &request(cpu, mem, gpu))
                .map(|c| c.name.clone())
        };
        assert_eq!(
            pick("250m", "256Mi", 0, JobType::Container).unwrap(),
            "micro"
        );
        assert_eq!(pick("1", "2Gi", 0, JobType::Container).unwrap(), "entry");
        assert_eq!(
            pick("1", "2Gi", 1, JobType::Container).unwrap(),
            "gpu-small"
        );
        assert_eq!(
            pick("1", "2Gi", 0, JobType::Service).unwrap(),
            "service-small"
        );
        assert_eq!(
            pick("64", "2Gi", 0, JobType::Container),
            Err(PricingError::NoClassFits {
                job_type: JobType::Container
            })
        );
    }

    /// Requests worked out by hand against `pricing/catalogue.yaml`, each bound by one resource.
    #[test]
    fn builtin_classes_by_hand() {
        use JobType::{Container, Native, Service};
        let catalogue = Catalogue::builtin().unwrap();
        // (cpu, memory, disk, gpu, type, expected class)
        let cases = [
            // micro's limits exactly (500m, 512Mi, 2Gi).
            ("500m", "512Mi", Some("2Gi"), 0, Container, Some("micro")),
            // cpu over micro's: lite (1 CPU, 1Gi).
            ("501m", "512Mi", None, 0, Container, Some("lite")),
            // memory over micro's and lite's: entry (2Gi).
            ("250m", "1025Mi", None, 0, Container, Some("entry")),
            // memory over entry's: basic (4Gi) though the cpu is tiny.
            ("250m", "3Gi", None, 0, Container, Some("basic")),
            // disk over micro's (2Gi): lite (4Gi).
            ("250m", "256Mi", Some("3Gi"), 0, Container, Some("lite")),
            // disk over entry's (8Gi): basic (16Gi).
            ("250m", "256Mi", Some("9Gi"), 0, Container, Some("basic")),
            // cpu over enterprise's (16): enterprise-xl (32), cheaper than gpu-large.
            ("17", "1Gi", None, 0, Container, Some("enterprise-xl")),
            // one GPU: gpu-small (14.44), not the cheaper CPU classes.
            ("250m", "256Mi", None, 1, Container, Some("gpu-small")),
            // one GPU and memory over gpu-small's (16Gi): gpu-medium.
            ("1", "17Gi", None, 1, Container, Some("gpu-medium")),
            // two GPUs: gpu-large.
            ("1", "1Gi", None, 2, Container, Some("gpu-large")),
            // three GPUs: no class.
            ("1", "1Gi", None, 3, Container, None),
            // enterprise-xl's cpu (32) exceeded: no class.
            ("33", "1Gi", None, 0, Container, None),
            // services: memory over service-medium's (8Gi): service-large.
            ("1", "9Gi", None, 0, Service, Some("service-large")),
            // a GPU service: no class.
            ("1", "1Gi", None, 1, Service, None),
            // native: cpu over native-standard's (4): native-large.
            ("5", "1Gi", None, 0, Native, Some("native-large")),
            // native-standard's disk exactly (32Gi).
            ("1", "1Gi", Some("32Gi"), 0, Native, Some("native-standard")),
        ];
        for (cpu, memory, disk, gpu, ty, expected) in cases {
            let req = Resources {
                class: None,
                cpu: cpu.into(),
                memory: memory.into(),
                disk: disk.map(Into::into),
                gpu,
            }
            .amounts()
            .unwrap();
            let got = catalogue
                .select(ty, None, &req)
                .ok()
                .map(|c| c.name.as_str());
            assert_eq!(
                got, expected,
                "{cpu}, {memory}, disk {disk:?}, {gpu} GPU, {ty:?}"
            );
        }
    }

    #[test]
    fn named_class_must_fit() {
        let catalogue = Catalogue::builtin().unwrap();
        let err = catalogue
            .select(JobType::Container, Some("entry"), &request("4", "1Gi", 0))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "4 CPU exceeds class \"entry\" (at most 1 CPU)"
        );
        let err = catalogue
            .select(JobType::Container, Some("entry"), &request("1", "3Gi", 0))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "3Gi memory exceeds class \"entry\" (at most 2Gi memory)"
        );
        let err = catalogue
            .select(
                JobType::Container,
                Some("service-small"),
                &request("1", "1Gi", 0),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "class \"service-small\" is for service jobs, not container"
        );
    }

    #[test]
    fn rejects_bad_catalogues() {
        let dup = BUILTIN_CATALOGUE.replace("id: 2,", "id: 1,");
        assert!(matches!(
            Catalogue::from_yaml(&dup),
            Err(CatalogueError::Class { .. })
        ));
        let precise = BUILTIN_CATALOGUE.replace("\"0.375\"", "\"0.3750001\"");
        assert!(matches!(
            Catalogue::from_yaml(&precise),
            Err(CatalogueError::Class { .. })
        ));
        let few = BUILTIN_CATALOGUE.replace("minEpochs: 30", "minEpochs: 3");
        assert!(matches!(
            Catalogue::from_yaml(&few),
            Err(CatalogueError::Syntax(_))
        ));
        let unknown = BUILTIN_CATALOGUE.replace("minEpochs: 30", "minEpochs: 30\nfoo: 1");
        assert!(matches!(
            Catalogue::from_yaml(&unknown),
            Err(CatalogueError::Syntax(_))
        ));
    }

    proptest! {
        /// With no class named, the chosen class is the naive model's cheapest cover (no class
        /// when none covers); a named class is taken exactly when it is of the job's type and
        /// covers the request.
        #[test]
        fn selection_is_cheapest_fit(
            // Half the draws in the small classes' range, where they differ in one resource.
            cpu in prop_oneof![1u64..=2_000, 1u64..40_000],
            mem_mi in prop_oneof![1u64..=4_096, 1u64..80_000],
            disk_gi in prop::option::of(prop_oneof![0u64..=16, 0u64..300]),
            gpu in 0u32..4,
            ty in prop::sample::select(vec![JobType::Container, JobType::Service, JobType::Native]),
        ) {
            let catalogue = Catalogue::builtin().unwrap();
            let req = ResourceAmounts {
                cpu_millis: cpu,
                memory_bytes: mem_mi << 20,
                disk_bytes: disk_gi.map(|gi| gi << 30),
                gpu,
            };
            let chosen = catalogue.select(ty, None, &req).ok().map(|c| c.name.clone());
            prop_assert_eq!(chosen, cheapest_cover(&catalogue, ty, &req));
            for class in &catalogue.classes {
                let named = catalogue.select(ty, Some(&class.name), &req);
                prop_assert_eq!(named.is_ok(), class.job_type == ty && covers(class, &req), "{}", class.name);
            }
        }
    }
}
