//! Compiles the wire contract with protox (pure Rust), so building Starling needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "starling/v1/events.proto",
        "starling/v1/storage.proto",
        "starling/v1/bandits.proto",
        "starling/v1/device_config.proto",
        "starling/v1/learning.proto",
        "starling/v1/privacy.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let mut config = prost_build::Config::new();
    // Operators write the device configuration as JSON: its messages read and write JSON too.
    let json =
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default, deny_unknown_fields)]";
    let oneof =
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]";
    for message in [
        "DeviceConfig",
        "SignalDefinition",
        "WindowedCount",
        "MovingAverage",
        "Session",
        "Surge",
        "DistinctCount",
        "HeavyHitters",
        "BanditDefinition",
        "EpsilonGreedy",
        "Ucb1",
        "ThompsonBeta",
        "ThompsonGaussian",
        "LinUcb",
        "PrivacyBudget",
        "PrivateEstimate",
        "CellEstimate",
    ] {
        config.message_attribute(format!(".starling.v1.{message}"), json);
    }
    // Operators define learning tasks as JSON too.
    for message in ["LearningTask", "FeatureLayout", "TrainingParams"] {
        config.message_attribute(format!(".starling.v1.{message}"), json);
    }
    config.enum_attribute(".starling.v1.SignalDefinition.kind", oneof);
    config.enum_attribute(".starling.v1.BanditDefinition.policy", oneof);
    config.compile_fds(descriptors)?;
    Ok(())
}
