import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

// Produced by the Rust build (see android/README.md). Overridable with -P.
val repoRoot = rootDir.parentFile
val generatedKotlinDir = providers.gradleProperty("starling.generated.dir")
    .orElse(File(repoRoot, "target/uniffi/kotlin").path)
val jniLibsDir = providers.gradleProperty("starling.jniLibs.dir")
    .orElse(File(repoRoot, "target/android/jniLibs").path)

android {
    namespace = "dev.starling"
    compileSdk = 36

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            // Hand-written API + Android glue live in src/main/kotlin; uniffi output
            // (package dev.starling.internal) is added from the Rust target dir.
            kotlin.srcDir(generatedKotlinDir)
            // libstarling_ffi.so per ABI (arm64-v8a/, x86_64/, ...), e.g. from cargo-ndk.
            jniLibs.srcDir(jniLibsDir)
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildTypes {
        release {
            isMinifyEnabled = false // a library ships consumer rules instead
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // Keep versions in step with jvm-tests/pom.xml.
    // The @aar carries libjnidispatch.so for every Android ABI; the plain jar does not.
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.11.0")
    // Imported by uniffi's generated code when uniffi.toml sets `android = true`
    // (RequiresApi); jvm-tests uses a stub for it instead.
    implementation("androidx.annotation:annotation:1.9.1")
}
