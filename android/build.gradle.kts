// Root build: declare plugin versions once; modules apply them.
// Keep kotlin in step with <kotlin.version> in jvm-tests/pom.xml.
// AGP 8.x still needs the separate kotlin-android plugin; on AGP 9+ (built-in
// Kotlin) drop org.jetbrains.kotlin.android here and in starling/.
plugins {
    id("com.android.library") version "8.13.0" apply false
    id("org.jetbrains.kotlin.android") version "2.4.21" apply false
}
