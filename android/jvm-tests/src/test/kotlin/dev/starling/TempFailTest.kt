package dev.starling
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
class TempFailTest {
    @Test
    fun `deliberately wrong`() = assertEquals("not_starling", Placeholder.NATIVE_LIBRARY)
}
