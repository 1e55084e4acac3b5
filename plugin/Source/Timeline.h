// The two lock-free structures between the audio thread and the network
// threads. Both are allocated once (prepare) and never resized while audio runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include <juce_core/juce_core.h>

namespace genredream {

// Input frames, audio thread -> sender thread: a single-producer
// single-consumer ring of interleaved float frames (juce::AbstractFifo).
class FrameFifo
{
public:
    void allocate (int capacityFrames, int channels)
    {
        numChannels = channels;
        fifo.setTotalSize (capacityFrames);
        fifo.reset();
        data.assign ((size_t) capacityFrames * (size_t) channels, 0.0f);
    }

    int channels() const noexcept { return numChannels; }
    int readyToRead() const noexcept { return fifo.getNumReady(); }
    int freeSpace() const noexcept { return fifo.getFreeSpace(); }

    // Audio thread: pushes `n` frames, channel c from src[c] (src[c] may repeat
    // a channel for a mono bus). Returns the frames written (all or none).
    int push (const float* const* src, int n) noexcept
    {
        if (fifo.getFreeSpace() < n)
            return 0;
        int s1, n1, s2, n2;
        fifo.prepareToWrite (n, s1, n1, s2, n2);
        copyIn (src, 0, s1, n1);
        copyIn (src, n1, s2, n2);
        fifo.finishedWrite (n1 + n2);
        return n;
    }

    // Sender thread: pops `n` interleaved frames into dst.
    int pop (float* dst, int n) noexcept
    {
        int s1, n1, s2, n2;
        fifo.prepareToRead (n, s1, n1, s2, n2);
        std::copy_n (data.data() + (size_t) s1 * numChannels, (size_t) n1 * numChannels, dst);
        std::copy_n (data.data() + (size_t) s2 * numChannels, (size_t) n2 * numChannels, dst + (size_t) n1 * numChannels);
        fifo.finishedRead (n1 + n2);
        return n1 + n2;
    }

    // Sender thread: drops `n` frames (nobody to send them to).
    void discard (int n) noexcept { fifo.finishedRead (juce::jmin (n, fifo.getNumReady())); }

private:
    void copyIn (const float* const* src, int from, int start, int n) noexcept
    {
        for (int i = 0; i < n; ++i)
            for (int c = 0; c < numChannels; ++c)
                data[(size_t) (start + i) * numChannels + c] = src[c][from + i];
    }

    juce::AbstractFifo fifo { 1 };
    std::vector<float> data;
    int numChannels = 1;
};

// Dreamed frames, receiver thread -> audio thread, placed by the absolute
// input frame they dream: slot a % size holds frame a once stamp[slot] == a.
// The writer fills the samples, then publishes the stamp (release); the reader
// checks the stamp (acquire) before reading. A frame is written long before
// it plays (it arrives up to the reported latency early) and the ring holds
// seconds, so a slot is never rewritten while it is read.
class DreamTimeline
{
public:
    void allocate (int sizeFrames, int channels)
    {
        size = sizeFrames;
        numChannels = channels;
        samples = std::vector<std::atomic<float>> ((size_t) sizeFrames * (size_t) channels);
        stamps = std::vector<std::atomic<int64_t>> ((size_t) sizeFrames);
        for (auto& s : stamps)
            s.store (-1, std::memory_order_relaxed);
    }

    int capacity() const noexcept { return size; }
    int channels() const noexcept { return numChannels; }

    // Receiver thread: frame `absFrame`, `srcChannels` interleaved samples.
    void write (int64_t absFrame, const float* frame, int srcChannels) noexcept
    {
        if (absFrame < 0 || size == 0)
            return;
        const auto slot = (size_t) (absFrame % size);
        for (int c = 0; c < numChannels; ++c)
            samples[slot * numChannels + c].store (frame[juce::jmin (c, srcChannels - 1)], std::memory_order_relaxed);
        stamps[slot].store (absFrame, std::memory_order_release);
    }

    bool has (int64_t absFrame) const noexcept
    {
        return absFrame >= 0 && size > 0 && stamps[(size_t) (absFrame % size)].load (std::memory_order_acquire) == absFrame;
    }

    float sample (int64_t absFrame, int channel) const noexcept
    {
        return samples[(size_t) (absFrame % size) * numChannels + channel].load (std::memory_order_relaxed);
    }

private:
    std::vector<std::atomic<float>> samples;
    std::vector<std::atomic<int64_t>> stamps;
    int size = 0;
    int numChannels = 1;
};

} // namespace genredream
