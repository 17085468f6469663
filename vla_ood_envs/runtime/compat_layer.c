/*
 * VK_LAYER_VLA_OOD_lavapipe_compat: lets SAPIEN render on Mesa's CPU driver (lavapipe) older than 24.3.
 *
 * SAPIEN requires descriptorBindingPartiallyBound, which old lavapipe does not offer, and old lavapipe
 * dereferences every descriptor binding when it draws, so a binding left unwritten crashes it. This layer
 *   1. reports descriptorBindingPartiallyBound (and VK_KHR_external_semaphore_fd) as supported,
 *   2. strips the feature, the extension and the PARTIALLY_BOUND binding flag before they reach the driver,
 *   3. writes every binding of every newly allocated descriptor set with a dummy resource (1x1 image + sampler,
 *      a small buffer and buffer view), so no binding is ever unwritten; the application's own writes replace them.
 * It is built and enabled by vla_ood_envs.render.compat only for drivers that need it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#define LAYER_NAME "VK_LAYER_VLA_OOD_lavapipe_compat"
#define EXPORT __attribute__((visibility("default")))
#define SEMAPHORE_FD_EXT "VK_KHR_external_semaphore_fd"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void *key_of(const void *handle) { return *(void **)handle; }

typedef struct Instance {
    void *key;
    VkInstance handle;
    PFN_vkGetInstanceProcAddr gipa;
    PFN_vkDestroyInstance DestroyInstance;
    PFN_vkEnumerateDeviceExtensionProperties EnumerateDeviceExtensionProperties;
    PFN_vkGetPhysicalDeviceFeatures2 GetPhysicalDeviceFeatures2;
    PFN_vkGetPhysicalDeviceFeatures2 GetPhysicalDeviceFeatures2KHR;
    PFN_vkGetPhysicalDeviceMemoryProperties GetPhysicalDeviceMemoryProperties;
    struct Instance *next;
} Instance;

typedef struct Layout {
    VkDescriptorSetLayout handle;
    uint32_t count;
    VkDescriptorSetLayoutBinding *bindings; /* pImmutableSamplers kept only as a flag (non-NULL) */
    int variable_last;                       /* the highest binding has a variable descriptor count */
    struct Layout *next;
} Layout;

typedef struct Device {
    void *key;
    VkDevice handle;
    VkPhysicalDeviceMemoryProperties memory;
    PFN_vkGetDeviceProcAddr gdpa;
    PFN_vkDestroyDevice DestroyDevice;
    PFN_vkCreateDescriptorSetLayout CreateDescriptorSetLayout;
    PFN_vkDestroyDescriptorSetLayout DestroyDescriptorSetLayout;
    PFN_vkAllocateDescriptorSets AllocateDescriptorSets;
    PFN_vkUpdateDescriptorSets UpdateDescriptorSets;
    PFN_vkCreateImage CreateImage;
    PFN_vkDestroyImage DestroyImage;
    PFN_vkGetImageMemoryRequirements GetImageMemoryRequirements;
    PFN_vkBindImageMemory BindImageMemory;
    PFN_vkCreateImageView CreateImageView;
    PFN_vkDestroyImageView DestroyImageView;
    PFN_vkCreateSampler CreateSampler;
    PFN_vkDestroySampler DestroySampler;
    PFN_vkCreateBuffer CreateBuffer;
    PFN_vkDestroyBuffer DestroyBuffer;
    PFN_vkGetBufferMemoryRequirements GetBufferMemoryRequirements;
    PFN_vkBindBufferMemory BindBufferMemory;
    PFN_vkCreateBufferView CreateBufferView;
    PFN_vkDestroyBufferView DestroyBufferView;
    PFN_vkAllocateMemory AllocateMemory;
    PFN_vkFreeMemory FreeMemory;
    int dummies; /* 0: not made yet, 1: ready, -1: failed (writes are skipped) */
    VkImage image;
    VkDeviceMemory image_memory;
    VkImageView view;
    VkSampler sampler;
    VkBuffer buffer;
    VkDeviceMemory buffer_memory;
    VkBufferView buffer_view;
    Layout *layouts;
    struct Device *next;
} Device;

static Instance *g_instances;
static Device *g_devices;

static Instance *find_instance(void *key) {
    for (Instance *i = g_instances; i; i = i->next)
        if (i->key == key) return i;
    return NULL;
}

static Device *find_device(void *key) {
    for (Device *d = g_devices; d; d = d->next)
        if (d->key == key) return d;
    return NULL;
}

/* ------------------------------------------------------------------ instance level */
static VKAPI_ATTR VkResult VKAPI_CALL layer_CreateInstance(const VkInstanceCreateInfo *info,
                                                           const VkAllocationCallbacks *alloc, VkInstance *out) {
    VkLayerInstanceCreateInfo *chain = (VkLayerInstanceCreateInfo *)info->pNext;
    while (chain && !(chain->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && chain->function == VK_LAYER_LINK_INFO))
        chain = (VkLayerInstanceCreateInfo *)chain->pNext;
    if (!chain) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr gipa = chain->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    chain->u.pLayerInfo = chain->u.pLayerInfo->pNext;
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)gipa(VK_NULL_HANDLE, "vkCreateInstance");
    VkResult r = create(info, alloc, out);
    if (r != VK_SUCCESS) return r;
    Instance *inst = calloc(1, sizeof(Instance));
    if (!inst) return VK_ERROR_OUT_OF_HOST_MEMORY;
    inst->key = key_of(*out);
    inst->handle = *out;
    inst->gipa = gipa;
    inst->DestroyInstance = (PFN_vkDestroyInstance)gipa(*out, "vkDestroyInstance");
    inst->EnumerateDeviceExtensionProperties =
        (PFN_vkEnumerateDeviceExtensionProperties)gipa(*out, "vkEnumerateDeviceExtensionProperties");
    inst->GetPhysicalDeviceFeatures2 = (PFN_vkGetPhysicalDeviceFeatures2)gipa(*out, "vkGetPhysicalDeviceFeatures2");
    inst->GetPhysicalDeviceFeatures2KHR =
        (PFN_vkGetPhysicalDeviceFeatures2)gipa(*out, "vkGetPhysicalDeviceFeatures2KHR");
    inst->GetPhysicalDeviceMemoryProperties =
        (PFN_vkGetPhysicalDeviceMemoryProperties)gipa(*out, "vkGetPhysicalDeviceMemoryProperties");
    pthread_mutex_lock(&g_lock);
    inst->next = g_instances;
    g_instances = inst;
    pthread_mutex_unlock(&g_lock);
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL layer_DestroyInstance(VkInstance instance, const VkAllocationCallbacks *alloc) {
    pthread_mutex_lock(&g_lock);
    Instance **p = &g_instances, *found = NULL;
    while (*p) {
        if ((*p)->key == key_of(instance)) {
            found = *p;
            *p = found->next;
            break;
        }
        p = &(*p)->next;
    }
    pthread_mutex_unlock(&g_lock);
    if (found) {
        found->DestroyInstance(instance, alloc);
        free(found);
    }
}

static void report_partially_bound(const VkPhysicalDeviceFeatures2 *features) {
    for (VkBaseOutStructure *s = (VkBaseOutStructure *)features->pNext; s; s = s->pNext) {
        if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES)
            ((VkPhysicalDeviceVulkan12Features *)s)->descriptorBindingPartiallyBound = VK_TRUE;
        else if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DESCRIPTOR_INDEXING_FEATURES)
            ((VkPhysicalDeviceDescriptorIndexingFeatures *)s)->descriptorBindingPartiallyBound = VK_TRUE;
    }
}

static VKAPI_ATTR void VKAPI_CALL layer_GetPhysicalDeviceFeatures2(VkPhysicalDevice pd, VkPhysicalDeviceFeatures2 *f) {
    pthread_mutex_lock(&g_lock);
    Instance *inst = find_instance(key_of(pd));
    pthread_mutex_unlock(&g_lock);
    inst->GetPhysicalDeviceFeatures2(pd, f);
    report_partially_bound(f);
}

static VKAPI_ATTR void VKAPI_CALL layer_GetPhysicalDeviceFeatures2KHR(VkPhysicalDevice pd, VkPhysicalDeviceFeatures2 *f) {
    pthread_mutex_lock(&g_lock);
    Instance *inst = find_instance(key_of(pd));
    pthread_mutex_unlock(&g_lock);
    (inst->GetPhysicalDeviceFeatures2KHR ? inst->GetPhysicalDeviceFeatures2KHR : inst->GetPhysicalDeviceFeatures2)(pd, f);
    report_partially_bound(f);
}

static int driver_has_extension(Instance *inst, VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (inst->EnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return 0;
    VkExtensionProperties *props = calloc(n ? n : 1, sizeof(VkExtensionProperties));
    if (!props) return 0;
    int found = 0;
    if (inst->EnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(props[i].extensionName, name)) found = 1;
    free(props);
    return found;
}

static VKAPI_ATTR VkResult VKAPI_CALL layer_EnumerateDeviceExtensionProperties(VkPhysicalDevice pd, const char *layer,
                                                                               uint32_t *count,
                                                                               VkExtensionProperties *props) {
    if (layer && !strcmp(layer, LAYER_NAME)) {
        *count = 0;
        return VK_SUCCESS;
    }
    pthread_mutex_lock(&g_lock);
    Instance *inst = find_instance(key_of(pd));
    pthread_mutex_unlock(&g_lock);
    if (layer || driver_has_extension(inst, pd, SEMAPHORE_FD_EXT))
        return inst->EnumerateDeviceExtensionProperties(pd, layer, count, props);
    uint32_t n = 0;
    VkResult r = inst->EnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
    if (r != VK_SUCCESS) return r;
    if (!props) {
        *count = n + 1;
        return VK_SUCCESS;
    }
    VkExtensionProperties *all = calloc(n + 1, sizeof(VkExtensionProperties));
    if (!all) return VK_ERROR_OUT_OF_HOST_MEMORY;
    r = inst->EnumerateDeviceExtensionProperties(pd, NULL, &n, all);
    if (r != VK_SUCCESS) {
        free(all);
        return r;
    }
    strcpy(all[n].extensionName, SEMAPHORE_FD_EXT);
    all[n].specVersion = 1;
    uint32_t copy = *count < n + 1 ? *count : n + 1;
    memcpy(props, all, copy * sizeof(VkExtensionProperties));
    free(all);
    *count = copy;
    return copy < n + 1 ? VK_INCOMPLETE : VK_SUCCESS;
}

/* ------------------------------------------------------------------ device creation */
#define LOAD(d, name) d->name = (PFN_vk##name)gdpa(dev, "vk" #name)

static VKAPI_ATTR VkResult VKAPI_CALL layer_CreateDevice(VkPhysicalDevice pd, const VkDeviceCreateInfo *info,
                                                         const VkAllocationCallbacks *alloc, VkDevice *out) {
    VkLayerDeviceCreateInfo *chain = (VkLayerDeviceCreateInfo *)info->pNext;
    while (chain && !(chain->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && chain->function == VK_LAYER_LINK_INFO))
        chain = (VkLayerDeviceCreateInfo *)chain->pNext;
    if (!chain) return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr gipa = chain->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    PFN_vkGetDeviceProcAddr gdpa = chain->u.pLayerInfo->pfnNextGetDeviceProcAddr;
    chain->u.pLayerInfo = chain->u.pLayerInfo->pNext;

    pthread_mutex_lock(&g_lock);
    Instance *inst = find_instance(key_of(pd));
    pthread_mutex_unlock(&g_lock);
    PFN_vkCreateDevice create = (PFN_vkCreateDevice)gipa(inst->handle, "vkCreateDevice");

    /* The driver must not be asked for what it lacks: clear the feature in place for the call and restore it. */
    VkBool32 *cleared[2] = {NULL, NULL};
    VkBool32 saved[2] = {0, 0};
    int nclear = 0;
    for (VkBaseOutStructure *s = (VkBaseOutStructure *)info->pNext; s && nclear < 2; s = s->pNext) {
        VkBool32 *flag = NULL;
        if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES)
            flag = &((VkPhysicalDeviceVulkan12Features *)s)->descriptorBindingPartiallyBound;
        else if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DESCRIPTOR_INDEXING_FEATURES)
            flag = &((VkPhysicalDeviceDescriptorIndexingFeatures *)s)->descriptorBindingPartiallyBound;
        if (flag) {
            cleared[nclear] = flag;
            saved[nclear++] = *flag;
            *flag = VK_FALSE;
        }
    }
    VkDeviceCreateInfo copy = *info;
    const char **names = NULL;
    if (!driver_has_extension(inst, pd, SEMAPHORE_FD_EXT) && info->enabledExtensionCount) {
        names = calloc(info->enabledExtensionCount, sizeof(char *));
        if (!names) return VK_ERROR_OUT_OF_HOST_MEMORY;
        uint32_t n = 0;
        for (uint32_t i = 0; i < info->enabledExtensionCount; i++)
            if (strcmp(info->ppEnabledExtensionNames[i], SEMAPHORE_FD_EXT)) names[n++] = info->ppEnabledExtensionNames[i];
        copy.enabledExtensionCount = n;
        copy.ppEnabledExtensionNames = names;
    }
    VkResult r = create(pd, &copy, alloc, out);
    for (int i = 0; i < nclear; i++) *cleared[i] = saved[i];
    free(names);
    if (r != VK_SUCCESS) return r;

    Device *d = calloc(1, sizeof(Device));
    if (!d) return VK_ERROR_OUT_OF_HOST_MEMORY;
    VkDevice dev = *out;
    d->key = key_of(dev);
    d->handle = dev;
    d->gdpa = gdpa;
    inst->GetPhysicalDeviceMemoryProperties(pd, &d->memory);
    LOAD(d, DestroyDevice);
    LOAD(d, CreateDescriptorSetLayout);
    LOAD(d, DestroyDescriptorSetLayout);
    LOAD(d, AllocateDescriptorSets);
    LOAD(d, UpdateDescriptorSets);
    LOAD(d, CreateImage);
    LOAD(d, DestroyImage);
    LOAD(d, GetImageMemoryRequirements);
    LOAD(d, BindImageMemory);
    LOAD(d, CreateImageView);
    LOAD(d, DestroyImageView);
    LOAD(d, CreateSampler);
    LOAD(d, DestroySampler);
    LOAD(d, CreateBuffer);
    LOAD(d, DestroyBuffer);
    LOAD(d, GetBufferMemoryRequirements);
    LOAD(d, BindBufferMemory);
    LOAD(d, CreateBufferView);
    LOAD(d, DestroyBufferView);
    LOAD(d, AllocateMemory);
    LOAD(d, FreeMemory);
    pthread_mutex_lock(&g_lock);
    d->next = g_devices;
    g_devices = d;
    pthread_mutex_unlock(&g_lock);
    return VK_SUCCESS;
}

static void free_dummies(Device *d) {
    if (d->dummies != 1) return;
    d->DestroyBufferView(d->handle, d->buffer_view, NULL);
    d->DestroyBuffer(d->handle, d->buffer, NULL);
    d->FreeMemory(d->handle, d->buffer_memory, NULL);
    d->DestroySampler(d->handle, d->sampler, NULL);
    d->DestroyImageView(d->handle, d->view, NULL);
    d->DestroyImage(d->handle, d->image, NULL);
    d->FreeMemory(d->handle, d->image_memory, NULL);
    d->dummies = 0;
}

static VKAPI_ATTR void VKAPI_CALL layer_DestroyDevice(VkDevice device, const VkAllocationCallbacks *alloc) {
    pthread_mutex_lock(&g_lock);
    Device **p = &g_devices, *found = NULL;
    while (*p) {
        if ((*p)->key == key_of(device)) {
            found = *p;
            *p = found->next;
            break;
        }
        p = &(*p)->next;
    }
    pthread_mutex_unlock(&g_lock);
    if (!found) return;
    free_dummies(found);
    for (Layout *l = found->layouts, *n; l; l = n) {
        n = l->next;
        free(l->bindings);
        free(l);
    }
    found->DestroyDevice(device, alloc);
    free(found);
}

/* ------------------------------------------------------------------ dummy resources */
static int memory_type(Device *d, uint32_t bits) {
    for (uint32_t i = 0; i < d->memory.memoryTypeCount; i++)
        if (bits & (1u << i)) return (int)i;
    return -1;
}

static int make_dummies(Device *d) {
    VkDevice dev = d->handle;
    VkImageCreateInfo ii = {VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
    ii.imageType = VK_IMAGE_TYPE_2D;
    ii.format = VK_FORMAT_R8G8B8A8_UNORM;
    ii.extent = (VkExtent3D){1, 1, 1};
    ii.mipLevels = 1;
    ii.arrayLayers = 1;
    ii.samples = VK_SAMPLE_COUNT_1_BIT;
    ii.tiling = VK_IMAGE_TILING_OPTIMAL;
    ii.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_STORAGE_BIT | VK_IMAGE_USAGE_INPUT_ATTACHMENT_BIT |
               VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT;
    ii.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
    if (d->CreateImage(dev, &ii, NULL, &d->image) != VK_SUCCESS) return 0;
    VkMemoryRequirements req;
    d->GetImageMemoryRequirements(dev, d->image, &req);
    VkMemoryAllocateInfo ai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, NULL, req.size, 0};
    int t = memory_type(d, req.memoryTypeBits);
    if (t < 0) return 0;
    ai.memoryTypeIndex = (uint32_t)t;
    if (d->AllocateMemory(dev, &ai, NULL, &d->image_memory) != VK_SUCCESS) return 0;
    d->BindImageMemory(dev, d->image, d->image_memory, 0);
    VkImageViewCreateInfo vi = {VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
    vi.image = d->image;
    vi.viewType = VK_IMAGE_VIEW_TYPE_2D;
    vi.format = ii.format;
    vi.subresourceRange = (VkImageSubresourceRange){VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
    if (d->CreateImageView(dev, &vi, NULL, &d->view) != VK_SUCCESS) return 0;
    VkSamplerCreateInfo si = {VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO};
    si.magFilter = si.minFilter = VK_FILTER_NEAREST;
    si.addressModeU = si.addressModeV = si.addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE;
    si.maxLod = 1.0f;
    if (d->CreateSampler(dev, &si, NULL, &d->sampler) != VK_SUCCESS) return 0;
    VkBufferCreateInfo bi = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = 65536;
    bi.usage = VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
               VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT;
    bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    if (d->CreateBuffer(dev, &bi, NULL, &d->buffer) != VK_SUCCESS) return 0;
    d->GetBufferMemoryRequirements(dev, d->buffer, &req);
    t = memory_type(d, req.memoryTypeBits);
    if (t < 0) return 0;
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = (uint32_t)t;
    if (d->AllocateMemory(dev, &ai, NULL, &d->buffer_memory) != VK_SUCCESS) return 0;
    d->BindBufferMemory(dev, d->buffer, d->buffer_memory, 0);
    VkBufferViewCreateInfo bv = {VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
    bv.buffer = d->buffer;
    bv.format = VK_FORMAT_R32_SFLOAT;
    bv.range = VK_WHOLE_SIZE;
    if (d->CreateBufferView(dev, &bv, NULL, &d->buffer_view) != VK_SUCCESS) return 0;
    return 1;
}

/* ------------------------------------------------------------------ descriptor sets */
static VKAPI_ATTR VkResult VKAPI_CALL layer_CreateDescriptorSetLayout(VkDevice device,
                                                                      const VkDescriptorSetLayoutCreateInfo *info,
                                                                      const VkAllocationCallbacks *alloc,
                                                                      VkDescriptorSetLayout *out) {
    pthread_mutex_lock(&g_lock);
    Device *d = find_device(key_of(device));
    pthread_mutex_unlock(&g_lock);
    VkDescriptorSetLayoutBindingFlagsCreateInfo *flags = NULL;
    for (VkBaseOutStructure *s = (VkBaseOutStructure *)info->pNext; s; s = s->pNext)
        if (s->sType == VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_BINDING_FLAGS_CREATE_INFO)
            flags = (VkDescriptorSetLayoutBindingFlagsCreateInfo *)s;
    const VkDescriptorBindingFlags *original = NULL;
    VkDescriptorBindingFlags *stripped = NULL;
    int variable_last = 0;
    uint32_t highest = 0;
    for (uint32_t i = 0; i < info->bindingCount; i++)
        if (info->pBindings[i].binding > highest) highest = info->pBindings[i].binding;
    if (flags && flags->bindingCount) {
        original = flags->pBindingFlags;
        stripped = malloc(flags->bindingCount * sizeof(VkDescriptorBindingFlags));
        if (!stripped) return VK_ERROR_OUT_OF_HOST_MEMORY;
        for (uint32_t i = 0; i < flags->bindingCount; i++) {
            stripped[i] = original[i] & ~VK_DESCRIPTOR_BINDING_PARTIALLY_BOUND_BIT;
            if ((original[i] & VK_DESCRIPTOR_BINDING_VARIABLE_DESCRIPTOR_COUNT_BIT) && i < info->bindingCount &&
                info->pBindings[i].binding == highest)
                variable_last = 1;
        }
        flags->pBindingFlags = stripped;
    }
    VkResult r = d->CreateDescriptorSetLayout(device, info, alloc, out);
    if (flags && stripped) flags->pBindingFlags = original;
    free(stripped);
    if (r != VK_SUCCESS) return r;
    Layout *l = calloc(1, sizeof(Layout));
    if (!l) return VK_SUCCESS; /* bookkeeping only: the layout itself is fine */
    l->handle = *out;
    l->count = info->bindingCount;
    l->variable_last = variable_last;
    l->bindings = calloc(info->bindingCount ? info->bindingCount : 1, sizeof(VkDescriptorSetLayoutBinding));
    if (l->bindings) memcpy(l->bindings, info->pBindings, info->bindingCount * sizeof(VkDescriptorSetLayoutBinding));
    pthread_mutex_lock(&g_lock);
    l->next = d->layouts;
    d->layouts = l;
    pthread_mutex_unlock(&g_lock);
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL layer_DestroyDescriptorSetLayout(VkDevice device, VkDescriptorSetLayout layout,
                                                                   const VkAllocationCallbacks *alloc) {
    pthread_mutex_lock(&g_lock);
    Device *d = find_device(key_of(device));
    Layout **p = &d->layouts, *found = NULL;
    while (*p) {
        if ((*p)->handle == layout) {
            found = *p;
            *p = found->next;
            break;
        }
        p = &(*p)->next;
    }
    pthread_mutex_unlock(&g_lock);
    if (found) {
        free(found->bindings);
        free(found);
    }
    d->DestroyDescriptorSetLayout(device, layout, alloc);
}

static void write_dummies(Device *d, VkDescriptorSet set, const Layout *l, uint32_t variable_count) {
    uint32_t highest = 0;
    for (uint32_t b = 0; b < l->count; b++)
        if (l->bindings[b].binding > highest) highest = l->bindings[b].binding;
    for (uint32_t b = 0; b < l->count; b++) {
        const VkDescriptorSetLayoutBinding *lb = &l->bindings[b];
        uint32_t n = lb->descriptorCount;
        if (l->variable_last && lb->binding == highest) n = variable_count;
        if (!n) continue;
        VkWriteDescriptorSet w = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        w.dstSet = set;
        w.dstBinding = lb->binding;
        w.descriptorCount = n;
        w.descriptorType = lb->descriptorType;
        VkDescriptorImageInfo *images = NULL;
        VkDescriptorBufferInfo *buffers = NULL;
        VkBufferView *views = NULL;
        switch (lb->descriptorType) {
        case VK_DESCRIPTOR_TYPE_SAMPLER:
            if (lb->pImmutableSamplers) continue;
            /* fall through */
        case VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER:
        case VK_DESCRIPTOR_TYPE_SAMPLED_IMAGE:
        case VK_DESCRIPTOR_TYPE_STORAGE_IMAGE:
        case VK_DESCRIPTOR_TYPE_INPUT_ATTACHMENT:
            images = calloc(n, sizeof(VkDescriptorImageInfo));
            if (!images) continue;
            for (uint32_t i = 0; i < n; i++) {
                images[i].sampler = d->sampler;
                images[i].imageView = d->view;
                images[i].imageLayout = lb->descriptorType == VK_DESCRIPTOR_TYPE_STORAGE_IMAGE
                                            ? VK_IMAGE_LAYOUT_GENERAL
                                            : VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL;
            }
            w.pImageInfo = images;
            break;
        case VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER:
        case VK_DESCRIPTOR_TYPE_STORAGE_BUFFER:
        case VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER_DYNAMIC:
        case VK_DESCRIPTOR_TYPE_STORAGE_BUFFER_DYNAMIC:
            buffers = calloc(n, sizeof(VkDescriptorBufferInfo));
            if (!buffers) continue;
            for (uint32_t i = 0; i < n; i++) {
                buffers[i].buffer = d->buffer;
                buffers[i].offset = 0;
                buffers[i].range = VK_WHOLE_SIZE;
            }
            w.pBufferInfo = buffers;
            break;
        case VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER:
        case VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER:
            views = calloc(n, sizeof(VkBufferView));
            if (!views) continue;
            for (uint32_t i = 0; i < n; i++) views[i] = d->buffer_view;
            w.pTexelBufferView = views;
            break;
        default:
            continue; /* inline uniform blocks, acceleration structures: nothing a dummy can stand for */
        }
        d->UpdateDescriptorSets(d->handle, 1, &w, 0, NULL);
        free(images);
        free(buffers);
        free(views);
    }
}

static VKAPI_ATTR VkResult VKAPI_CALL layer_AllocateDescriptorSets(VkDevice device,
                                                                   const VkDescriptorSetAllocateInfo *info,
                                                                   VkDescriptorSet *sets) {
    pthread_mutex_lock(&g_lock);
    Device *d = find_device(key_of(device));
    pthread_mutex_unlock(&g_lock);
    VkResult r = d->AllocateDescriptorSets(device, info, sets);
    if (r != VK_SUCCESS) return r;
    const VkDescriptorSetVariableDescriptorCountAllocateInfo *variable = NULL;
    for (const VkBaseInStructure *s = info->pNext; s; s = s->pNext)
        if (s->sType == VK_STRUCTURE_TYPE_DESCRIPTOR_SET_VARIABLE_DESCRIPTOR_COUNT_ALLOCATE_INFO)
            variable = (const VkDescriptorSetVariableDescriptorCountAllocateInfo *)s;
    pthread_mutex_lock(&g_lock);
    if (d->dummies == 0) d->dummies = make_dummies(d) ? 1 : -1;
    if (d->dummies == 1) {
        for (uint32_t i = 0; i < info->descriptorSetCount; i++) {
            for (Layout *l = d->layouts; l; l = l->next) {
                if (l->handle != info->pSetLayouts[i]) continue;
                uint32_t vc = variable && i < variable->descriptorSetCount ? variable->pDescriptorCounts[i] : 0;
                write_dummies(d, sets[i], l, vc);
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    return VK_SUCCESS;
}

/* ------------------------------------------------------------------ dispatch */
static PFN_vkVoidFunction device_function(const char *name);

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vla_ood_GetDeviceProcAddr(VkDevice device, const char *name) {
    PFN_vkVoidFunction f = device_function(name);
    if (f) return f;
    pthread_mutex_lock(&g_lock);
    Device *d = find_device(key_of(device));
    pthread_mutex_unlock(&g_lock);
    return d ? d->gdpa(device, name) : NULL;
}

static PFN_vkVoidFunction device_function(const char *name) {
#define MATCH(fn, impl) \
    if (!strcmp(name, fn)) return (PFN_vkVoidFunction)impl
    MATCH("vkGetDeviceProcAddr", vla_ood_GetDeviceProcAddr);
    MATCH("vkDestroyDevice", layer_DestroyDevice);
    MATCH("vkCreateDescriptorSetLayout", layer_CreateDescriptorSetLayout);
    MATCH("vkDestroyDescriptorSetLayout", layer_DestroyDescriptorSetLayout);
    MATCH("vkAllocateDescriptorSets", layer_AllocateDescriptorSets);
    return NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vla_ood_GetInstanceProcAddr(VkInstance instance, const char *name) {
    MATCH("vkGetInstanceProcAddr", vla_ood_GetInstanceProcAddr);
    MATCH("vkCreateInstance", layer_CreateInstance);
    MATCH("vkDestroyInstance", layer_DestroyInstance);
    MATCH("vkCreateDevice", layer_CreateDevice);
    MATCH("vkEnumerateDeviceExtensionProperties", layer_EnumerateDeviceExtensionProperties);
    MATCH("vkGetPhysicalDeviceFeatures2", layer_GetPhysicalDeviceFeatures2);
    MATCH("vkGetPhysicalDeviceFeatures2KHR", layer_GetPhysicalDeviceFeatures2KHR);
    PFN_vkVoidFunction f = device_function(name);
    if (f) return f;
    if (!instance) return NULL;
    pthread_mutex_lock(&g_lock);
    Instance *inst = find_instance(key_of(instance));
    pthread_mutex_unlock(&g_lock);
    return inst ? inst->gipa(instance, name) : NULL;
}

EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface *v) {
    if (v->loaderLayerInterfaceVersion > 2) v->loaderLayerInterfaceVersion = 2;
    v->pfnGetInstanceProcAddr = vla_ood_GetInstanceProcAddr;
    v->pfnGetDeviceProcAddr = vla_ood_GetDeviceProcAddr;
    v->pfnGetPhysicalDeviceProcAddr = NULL;
    return VK_SUCCESS;
}
