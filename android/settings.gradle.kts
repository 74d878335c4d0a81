// Gradle build for the Android library. Not run on the Linux CI box (no Android
// SDK / Google Maven there); the JVM harness in jvm-tests/ is Maven-based.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "starling-android"
include(":starling")
