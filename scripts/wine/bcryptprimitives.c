/* Test-only stand-in for bcryptprimitives.dll, for running hardmatch.exe under Wine in CI
 * (scripts/windows-check.sh). Rust's standard library imports ProcessPrng from
 * bcryptprimitives.dll on Windows; Debian's Wine 8 has no such DLL, so every Rust .exe fails to
 * start (status c0000135). This one exports ProcessPrng and fills the buffer from
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. It is built beside the .exe in
 * a scratch folder and is never part of what users download: Windows has the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
