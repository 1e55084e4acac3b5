#include "PluginProcessor.h"
#include "PluginEditor.h"

namespace genredream {

namespace {

juce::AudioProcessorValueTreeState::ParameterLayout makeLayout()
{
    juce::AudioProcessorValueTreeState::ParameterLayout layout;
    layout.add (std::make_unique<juce::AudioParameterBool> (juce::ParameterID { "dream", 1 }, "dream", true));
    layout.add (std::make_unique<juce::AudioParameterFloat> (juce::ParameterID { "depth", 1 }, "depth",
                                                             juce::NormalisableRange<float> (0.0f, 1.0f), 0.5f));
    layout.add (std::make_unique<juce::AudioParameterFloat> (juce::ParameterID { "mix", 1 }, "mix",
                                                             juce::NormalisableRange<float> (0.0f, 1.0f), 1.0f));
    juce::StringArray targets { "none" };
    for (int i = 0; i < kNumTargets; ++i)
        targets.add (kScoreLabels[i]);
    layout.add (std::make_unique<juce::AudioParameterChoice> (juce::ParameterID { "target", 1 }, "target", targets, 0));
    for (int k = 0; k < kNumScores; ++k)
        layout.add (std::make_unique<juce::AudioParameterFloat> (juce::ParameterID { "score_" + juce::String (k), 1 },
                                                                 juce::String ("score ") + kScoreLabels[k],
                                                                 juce::NormalisableRange<float> (0.0f, 1.0f), 0.0f));
    return layout;
}

juce::String json (const juce::String& s) { return juce::JSON::toString (juce::var (s)); }

} // namespace

GenredreamProcessor::GenredreamProcessor()
    : juce::AudioProcessor (BusesProperties()
                                .withInput ("Input", juce::AudioChannelSet::stereo(), true)
                                .withOutput ("Output", juce::AudioChannelSet::stereo(), true)),
      params (*this, nullptr, "genredream", makeLayout())
{
    for (int k = 0; k < kNumScores; ++k)
        scoreParams[k] = params.getParameter ("score_" + juce::String (k));
    dreamParam = params.getRawParameterValue ("dream");
    for (auto* id : { "depth", "mix", "target" })
        params.addParameterListener (id, this);

    // Scores become parameter values on the message thread: that is where a
    // plugin's own edits reach the host as edits (VST3 performEdit), which hosts
    // record as automation and show as the parameter's value.
    link.onScore = [this] (int, float) { triggerAsyncUpdate(); };
    link.onStatusLine = [this] { return statusLine(); };
    link.onTick = [this] { updateLatency(); };
}

GenredreamProcessor::~GenredreamProcessor()
{
    link.shutdown();
    cancelPendingUpdate();
    link.onStatusLine = nullptr;
    link.onTick = nullptr;
    link.onScore = nullptr;
    for (auto* id : { "depth", "mix", "target" })
        params.removeParameterListener (id, this);
}

bool GenredreamProcessor::isBusesLayoutSupported (const BusesLayout& layouts) const
{
    const auto in = layouts.getMainInputChannelSet(), out = layouts.getMainOutputChannelSet();
    return in == out && (out == juce::AudioChannelSet::mono() || out == juce::AudioChannelSet::stereo());
}

int GenredreamProcessor::dreamLatencyFrames (double dreamLatencyMs) const
{
    const double ms = (dreamLatencyMs > 0.0 ? dreamLatencyMs : kDefaultDreamLatencyMs) + kMarginMs;
    // The host's block counts as at least kBlockAllowance frames, so the latency
    // does not move with the block size a host happens to prepare with.
    return (int) std::ceil (ms * sampleRate / 1000.0) + kPacketFrames + juce::jmax (kBlockAllowance, maxBlock);
}

void GenredreamProcessor::prepareToPlay (double newRate, int samplesPerBlock)
{
    const int newChannels = juce::jlimit (1, 2, getTotalNumInputChannels());
    const int blockRoom = juce::jmax (kBlockAllowance, samplesPerBlock);
    // Prepared again at the same rate, channels and room (a host that
    // re-prepares on every change of block size): the stream, the rings and
    // the latency go on untouched, so the audio has no gap.
    if (! dryRing.empty() && newRate == sampleRate && newChannels == channels && blockRoom <= preparedBlockRoom)
    {
        maxBlock = juce::jmax (1, samplesPerBlock);
        updateLatency();
        return;
    }
    link.stop();
    sampleRate = newRate;
    maxBlock = juce::jmax (1, samplesPerBlock);
    channels = newChannels;
    preparedBlockRoom = blockRoom;
    // Seconds of room: the latency is about 1.5 s, a hop arrives at once.
    ringFrames = (int) std::ceil (sampleRate * 10.0) + 4 * blockRoom;
    timeline.allocate (ringFrames, channels);
    fifo.allocate ((int) std::ceil (sampleRate * 4.0) + 4 * blockRoom, channels);
    dryRing.assign ((size_t) ringFrames * (size_t) channels, 0.0f);
    absFrames = 0;
    gain = 0.0f;
    lookRun = 0;
    offlineStalled = false;
    for (auto& m : midiSent) m = -1;

    // Learn the engine's dream latency before telling the host ours.
    if (link.probe (300) && link.getDreamLatencyMs() > 0.0)
        knownDreamLatencyMs = link.getDreamLatencyMs();
    activeLatency = -1;
    updateLatency();
    link.start (sampleRate, channels, &fifo, &timeline);
}

void GenredreamProcessor::releaseResources()
{
    // The link keeps running (it idles without input): a host that releases
    // and prepares again at the same rate continues the same stream.
}

void GenredreamProcessor::updateLatency()
{
    if (const double engineMs = link.getDreamLatencyMs(); engineMs > 0.0 && std::abs (engineMs - knownDreamLatencyMs.load()) > 0.5)
        knownDreamLatencyMs = engineMs;
    const int wanted = dreamParam->load() > 0.5f ? dreamLatencyFrames (knownDreamLatencyMs.load()) : 0;
    if (wanted == activeLatency.load())
        return;
    if (activeLatency.load() >= 0)
        latencyChanges++;
    link.latencyFrames = wanted;
    activeLatency = wanted;
    setLatencySamples (wanted);
}

void GenredreamProcessor::parameterChanged (const juce::String& id, float value)
{
    // May be the audio thread: atomics only, the sender thread sends.
    if (id == "depth")
        link.setDepth (value);
    else if (id == "mix")
        link.setMix (value);
    else if (id == "target")
    {
        const int i = juce::roundToInt (value);
        link.setTarget (i <= 0 || i > kNumTargets ? juce::String() : juce::String (kScoreLabels[i - 1]));
    }
}

void GenredreamProcessor::handleAsyncUpdate()
{
    for (int k = 0; k < kNumScores; ++k)
    {
        const float v = link.scores[(size_t) k].load (std::memory_order_relaxed);
        auto* p = scoreParams[k];
        if (std::abs (p->getValue() - v) > 1.0e-7f)
        {
            p->beginChangeGesture();
            p->setValueNotifyingHost (v);
            p->endChangeGesture();
        }
    }
}

void GenredreamProcessor::waitForDream (int64_t lastFrame)
{
    // Offline bounce: the host waits for us, so wait (bounded) for the dream.
    const int64_t start = link.streamStart.load (std::memory_order_acquire);
    if (start < 0 || lastFrame < start)
        return;
    if (offlineStalled && link.dreamWrites.load() == offlineStallAt)
        return;   // nothing came since the last give-up (the end of the stream)
    offlineStalled = false;
    const auto deadline = juce::Time::getMillisecondCounterHiRes() + 5000.0;
    while (! timeline.has (lastFrame))
    {
        if (link.streamStart.load() < 0 || juce::Time::getMillisecondCounterHiRes() > deadline)
        {
            offlineStalled = true;
            offlineStallAt = link.dreamWrites.load();
            offlineWaits++;
            return;
        }
        juce::Thread::sleep (1);
    }
}

void GenredreamProcessor::processBlock (juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi)
{
    juce::ScopedNoDenormals noDenormals;
    const int n = buffer.getNumSamples();
    const int inChannels = juce::jmin (getTotalNumInputChannels(), buffer.getNumChannels());
    if (n <= 0 || inChannels <= 0 || dryRing.empty())
        return;
    const float* src[2] = { buffer.getReadPointer (0), buffer.getReadPointer (juce::jmin (1, inChannels - 1)) };

    // Input to the engine (the sender thread sends it).
    int overflow = link.overflowState.load (std::memory_order_acquire);
    if (overflow == 2)
    {
        link.resyncFrame.store (absFrames, std::memory_order_relaxed);
        link.overflowState.store (0, std::memory_order_release);
        overflow = 0;
    }
    if (overflow == 0)
    {
        if (isNonRealtime())
            for (int waited = 0; fifo.freeSpace() < n && waited < 2000 && link.streamStart.load() >= 0; ++waited)
                juce::Thread::sleep (1);
        if (fifo.push (src, n) == 0)
        {
            link.overflowState.store (1, std::memory_order_release);
            inputOverflows++;
        }
    }

    for (int i = 0; i < n; ++i)
        for (int c = 0; c < channels; ++c)
            dryRing[(size_t) ((absFrames + i) % ringFrames) * channels + c] = src[c][i];

    const int latency = activeLatency.load();
    if (dreamParam->load() > 0.5f && latency > 0)
    {
        const int64_t stream = link.streamStart.load (std::memory_order_acquire);
        if (isNonRealtime())
            waitForDream (absFrames + n - 1 - latency + kFadeFrames);
        bool late = false;
        int64_t wet = 0;
        constexpr float step = 1.0f / (float) kFadeFrames;
        for (int i = 0; i < n; ++i)
        {
            const int64_t a = absFrames + i - latency;   // the input frame this output sample plays
            lookRun = timeline.has (a + kFadeFrames) ? lookRun + 1 : 0;
            gain = lookRun > kFadeFrames ? juce::jmin (1.0f, gain + step) : juce::jmax (0.0f, gain - step);
            const bool have = timeline.has (a);
            late |= stream >= 0 && a >= stream && ! have;
            const bool useDream = have && gain > 0.0f;
            wet += useDream && gain >= 1.0f;
            for (int c = 0; c < buffer.getNumChannels(); ++c)
            {
                const int cc = juce::jmin (c, channels - 1);
                const float dry = a >= 0 ? dryRing[(size_t) (a % ringFrames) * channels + cc] : 0.0f;
                buffer.getWritePointer (c)[i] = useDream ? dry + gain * (timeline.sample (a, cc) - dry) : dry;
            }
        }
        dreamBlocks++;
        dreamFrames += wet;
        dryFrames += n - wet;
        if (late)
            lateBlocks++;
    }

    // One MIDI CC per genre score, when it moves.
    for (int k = 0; k < kNumScores; ++k)
    {
        const int v = juce::jlimit (0, 127, juce::roundToInt (link.scores[(size_t) k].load (std::memory_order_relaxed) * 127.0f));
        if (v != midiSent[k])
        {
            midi.addEvent (juce::MidiMessage::controllerEvent (1, kFirstScoreCC + k, v), 0);
            midiSent[k] = v;
        }
    }

    absFrames += n;
    link.audioFrames.store (absFrames, std::memory_order_relaxed);
}

void GenredreamProcessor::setEngineAddress (const juce::String& host, int port)
{
    link.setEngine (host, port);
    updateHostDisplay (ChangeDetails().withNonParameterStateChanged (true));
}

juce::String GenredreamProcessor::statusLine() const
{
    const auto s = link.getStats();
    juce::String scores;
    for (int k = 0; k < kNumScores; ++k)
        scores << (k ? "," : "") << json (kScoreLabels[k]) << ":" << link.scores[(size_t) k].load();
    juce::String line;
    line << "{\"connected\":" << (s.connected ? "true" : "false")
         << ",\"streaming\":" << (s.streaming ? "true" : "false")
         << ",\"loading\":" << (s.loading ? "true" : "false")
         << ",\"engine\":" << json (link.getEngineHost() + ":" + juce::String (link.getEnginePort()))
         << ",\"local_port\":" << link.getLocalPort()
         << ",\"sample_rate\":" << sampleRate
         << ",\"latency_frames\":" << activeLatency.load()
         << ",\"dream_latency_ms\":" << knownDreamLatencyMs.load()
         << ",\"engine_dream_latency_ms\":" << s.dreamLatencyMs
         << ",\"margin_ms\":" << kMarginMs
         << ",\"late_blocks\":" << lateBlocks.load()
         << ",\"dream_blocks\":" << dreamBlocks.load()
         << ",\"dream_frames\":" << dreamFrames.load()
         << ",\"dry_frames\":" << dryFrames.load()
         << ",\"offline_waits\":" << offlineWaits.load()
         << ",\"input_overflows\":" << inputOverflows.load()
         << ",\"latency_changes\":" << latencyChanges.load()
         << ",\"packets_sent\":" << s.packetsSent
         << ",\"dream_packets\":" << s.dreamPackets
         << ",\"streams\":" << s.streams
         << ",\"wrong_rate\":" << s.wrongRate
         << ",\"round_trip_p50_ms\":" << s.roundTripP50Ms
         << ",\"round_trip_p99_ms\":" << s.roundTripP99Ms
         << ",\"min_slack_ms\":" << s.minSlackMs
         << ",\"lease_s\":" << s.leaseS
         << ",\"top_genre\":" << json (s.topGenre)
         << ",\"top_score\":" << s.topScore
         << ",\"last_error\":" << json (s.lastError)
         << ",\"scores\":{" << scores << "}}\n";
    return line;
}

void GenredreamProcessor::getStateInformation (juce::MemoryBlock& dest)
{
    auto state = params.copyState();
    state.setProperty ("engineHost", link.getEngineHost(), nullptr);
    state.setProperty ("enginePort", link.getEnginePort(), nullptr);
    state.setProperty ("dreamLatencyMs", knownDreamLatencyMs.load(), nullptr);
    if (auto xml = state.createXml())
        copyXmlToBinary (*xml, dest);
}

void GenredreamProcessor::setStateInformation (const void* data, int size)
{
    auto xml = getXmlFromBinary (data, size);
    if (xml == nullptr || ! xml->hasTagName (params.state.getType()))
        return;
    auto state = juce::ValueTree::fromXml (*xml);
    params.replaceState (state);
    if (state.hasProperty ("engineHost"))
        link.setEngine (state["engineHost"].toString(), (int) state["enginePort"]);
    if ((double) state.getProperty ("dreamLatencyMs", 0.0) > 0.0 && link.getDreamLatencyMs() <= 0.0)
        knownDreamLatencyMs = (double) state["dreamLatencyMs"];
}

juce::AudioProcessorEditor* GenredreamProcessor::createEditor()
{
    return new GenredreamEditor (*this);
}

} // namespace genredream

juce::AudioProcessor* JUCE_CALLTYPE createPluginFilter()
{
    return new genredream::GenredreamProcessor();
}
