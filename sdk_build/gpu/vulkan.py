"""What the Vulkan devices of this machine offer a GPU engine: name, driver, f16 support and the buffer limit.

LiteRT-LM's GPU backend (LiteRT's ml_drift over Dawn over Vulkan) needs a Vulkan device; what it can run
depends on two of its properties: whether it has 16-bit float arithmetic and storage (`shaderFloat16`,
`storageBuffer16BitAccess`: what WebGPU calls `shader-f16`), and the largest storage buffer one shader may bind
(`maxStorageBufferRange`): a weight tensor larger than that cannot be uploaded at all. This module asks the Vulkan
loader directly (ctypes, no extra package), before an engine is created, so that a missing driver or a limit a
bundle exceeds is reported as one line instead of a crash deep inside the engine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os

_APPLICATION_INFO, _INSTANCE_CREATE_INFO = 0, 1
_FEATURES_2, _PROPERTIES_2 = 1000059000, 1000059001
_STORAGE_16BIT_FEATURES, _FLOAT16_INT8_FEATURES = 1000083000, 1000082000
_DRIVER_PROPERTIES = 1000196000
_API_1_1 = (1 << 22) | (1 << 12)

_DEVICE_TYPES = {0: "other", 1: "integrated", 2: "discrete", 3: "virtual", 4: "cpu"}
# Offsets in VkPhysicalDeviceProperties: apiVersion, driverVersion, vendorID, deviceID, deviceType (5 x uint32),
# deviceName[256], pipelineCacheUUID[16], then VkPhysicalDeviceLimits aligned to 8, whose 8th uint32 is
# maxStorageBufferRange. Fixed by the Vulkan ABI since 1.0.
_NAME_OFFSET, _LIMITS_OFFSET = 20, 296
_MAX_STORAGE_BUFFER_RANGE_OFFSET = _LIMITS_OFFSET + 7 * 4
_PROPERTIES_BYTES = 1024  # sizeof(VkPhysicalDeviceProperties) is 824 on 64-bit targets


class VulkanUnavailable(RuntimeError):
    """No Vulkan loader, or a loader with no device: a GPU engine cannot run here."""


@dataclasses.dataclass(frozen=True)
class VulkanDevice:
    """One Vulkan physical device, as a GPU engine on top of it will see it."""

    name: str
    driver: str
    driver_info: str
    device_type: str
    """Vulkan's deviceType: discrete, integrated, virtual, cpu (a software rasterizer) or other."""
    api_version: str
    vendor_id: int
    shader_float16: bool
    storage_buffer_16bit: bool
    max_storage_buffer_range: int
    """Bytes one shader may bind as a storage buffer: the largest tensor the engine can upload as one buffer."""

    @property
    def software(self) -> bool:
        return self.device_type == "cpu"

    @property
    def f16(self) -> bool:
        """Both halves of what WebGPU's `shader-f16` needs: f16 arithmetic in shaders and 16-bit storage buffers."""
        return self.shader_float16 and self.storage_buffer_16bit

    def describe(self) -> str:
        kind = "software" if self.software else self.device_type
        limit = self.max_storage_buffer_range / 2**20
        return (f"{self.name} ({self.driver}{', ' + self.driver_info if self.driver_info else ''}; {kind}; "
                f"f16 {'yes' if self.f16 else 'no'}; max storage buffer {limit:,.0f} MiB)")

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "software": self.software, "f16": self.f16}


class _AppInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_AppInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


class _Float16Int8(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("shaderFloat16", ctypes.c_uint32),
                ("shaderInt8", ctypes.c_uint32)]


class _Storage16(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("storageBuffer16BitAccess", ctypes.c_uint32),
                ("uniformAndStorageBuffer16BitAccess", ctypes.c_uint32), ("storagePushConstant16", ctypes.c_uint32),
                ("storageInputOutput16", ctypes.c_uint32)]


class _Features2(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("features", ctypes.c_uint32 * 55)]


class _DriverProperties(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("driverID", ctypes.c_uint32),
                ("driverName", ctypes.c_char * 256), ("driverInfo", ctypes.c_char * 256),
                ("conformanceVersion", ctypes.c_uint8 * 4)]


class _Properties2(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p),
                ("properties", ctypes.c_uint8 * _PROPERTIES_BYTES)]


def _load_loader() -> ctypes.CDLL:
    for name in ("libvulkan.so.1", ctypes.util.find_library("vulkan") or "", "libvulkan.so"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise VulkanUnavailable(
        "no Vulkan loader (libvulkan.so.1) on this machine; install Debian's libvulkan1 and a driver "
        "(bash scripts/setup.sh installs lavapipe, Mesa's software Vulkan driver)"
    )


def _version(packed: int) -> str:
    return f"{(packed >> 22) & 0x7F}.{(packed >> 12) & 0x3FF}.{packed & 0xFFF}"


def _proc(lib: ctypes.CDLL, instance: ctypes.c_void_p, name: str, argtypes: list) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    lib.vkGetInstanceProcAddr.restype = ctypes.c_void_p
    lib.vkGetInstanceProcAddr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    address = lib.vkGetInstanceProcAddr(instance, name.encode())
    if not address:
        raise VulkanUnavailable(f"the Vulkan loader has no {name} (Vulkan 1.1 is needed)")
    return ctypes.CFUNCTYPE(None, *argtypes)(address)


def _describe_device(lib: ctypes.CDLL, instance: ctypes.c_void_p, handle: ctypes.c_void_p) -> VulkanDevice:
    get_properties2 = _proc(lib, instance, "vkGetPhysicalDeviceProperties2", [ctypes.c_void_p, ctypes.c_void_p])
    get_features2 = _proc(lib, instance, "vkGetPhysicalDeviceFeatures2", [ctypes.c_void_p, ctypes.c_void_p])
    driver = _DriverProperties(sType=_DRIVER_PROPERTIES)
    properties = _Properties2(sType=_PROPERTIES_2, pNext=ctypes.cast(ctypes.pointer(driver), ctypes.c_void_p))
    get_properties2(handle, ctypes.byref(properties))
    raw = bytes(properties.properties)
    api, _driver_version, vendor, _device_id, kind = (int.from_bytes(raw[i:i + 4], "little") for i in range(0, 20, 4))
    name = raw[_NAME_OFFSET:_NAME_OFFSET + 256].split(b"\0", 1)[0].decode(errors="replace")
    max_range = int.from_bytes(raw[_MAX_STORAGE_BUFFER_RANGE_OFFSET:_MAX_STORAGE_BUFFER_RANGE_OFFSET + 4], "little")
    storage16 = _Storage16(sType=_STORAGE_16BIT_FEATURES)
    float16 = _Float16Int8(sType=_FLOAT16_INT8_FEATURES, pNext=ctypes.cast(ctypes.pointer(storage16), ctypes.c_void_p))
    features = _Features2(sType=_FEATURES_2, pNext=ctypes.cast(ctypes.pointer(float16), ctypes.c_void_p))
    get_features2(handle, ctypes.byref(features))
    return VulkanDevice(
        name=name,
        driver=driver.driverName.decode(errors="replace"),
        driver_info=driver.driverInfo.decode(errors="replace"),
        device_type=_DEVICE_TYPES.get(kind, f"type {kind}"),
        api_version=_version(api),
        vendor_id=vendor,
        shader_float16=bool(float16.shaderFloat16),
        storage_buffer_16bit=bool(storage16.storageBuffer16BitAccess),
        max_storage_buffer_range=max_range,
    )


def list_devices() -> list[VulkanDevice]:
    """Every Vulkan physical device the loader offers (honours VK_DRIVER_FILES / VK_ICD_FILENAMES).

    Raises VulkanUnavailable when there is no loader or no device, with what to install.
    """
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # the loader's layers complain loudly without one
    lib = _load_loader()
    app = _AppInfo(sType=_APPLICATION_INFO, pApplicationName=b"gemma-edge", apiVersion=_API_1_1)
    info = _InstanceInfo(sType=_INSTANCE_CREATE_INFO, pApplicationInfo=ctypes.pointer(app))
    instance = ctypes.c_void_p()
    lib.vkCreateInstance.restype = ctypes.c_int32
    lib.vkCreateInstance.argtypes = [ctypes.POINTER(_InstanceInfo), ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    result = lib.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != 0:
        raise VulkanUnavailable(
            f"vkCreateInstance failed (VkResult {result}): no Vulkan driver is installed or it cannot start; "
            "bash scripts/setup.sh installs lavapipe (Mesa's software Vulkan driver)"
        )
    try:
        lib.vkEnumeratePhysicalDevices.restype = ctypes.c_int32
        lib.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
        count = ctypes.c_uint32(0)
        lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * max(count.value, 1))()
        lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        devices = [_describe_device(lib, instance, handles[i]) for i in range(count.value)]
    finally:
        lib.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.vkDestroyInstance(instance, None)
    if not devices:
        raise VulkanUnavailable(
            "the Vulkan loader found no device: no Vulkan driver (ICD) is installed; bash scripts/setup.sh "
            "installs lavapipe (Mesa's software Vulkan driver), or point VK_DRIVER_FILES at a driver's ICD json"
        )
    return devices


def engine_device(devices: list[VulkanDevice]) -> VulkanDevice:
    """The device a WebGPU engine picks by default: a discrete GPU, then integrated, virtual, software."""
    order = {"discrete": 0, "integrated": 1, "virtual": 2, "cpu": 3}
    return min(devices, key=lambda d: order.get(d.device_type, 4))


if __name__ == "__main__":
    for device in list_devices():
        print(device.describe())
