// genredream_score_host: a small console host on JUCE's own hosting classes.
//
//   genredream_score_host PLUGIN.vst3 INPUT.wav [--block N] [--realtime 0|1] [--out OUT.wav]
//
// Loads the plugin, plays the file through it block by block (at real-time
// pace unless --realtime 0), and prints one JSON line per event on stdout:
// the latency the plugin reports, every `score <genre>` parameter value as it
// moves (the host's view of it: what a DAW records as automation), MIDI CCs
// the plugin sends, and at the end the time processBlock took per block.
// pedalboard and dawdreamer cannot read back a parameter the plugin sets
// itself; this can, so tests/test_plugin_scores.py uses it.
#include <juce_audio_formats/juce_audio_formats.h>
#include <juce_audio_processors/juce_audio_processors.h>

#include <cstdio>

namespace {

juce::String arg (const juce::StringArray& args, const juce::String& name, const juce::String& fallback)
{
    const int i = args.indexOf (name);
    return i >= 0 && i + 1 < args.size() ? args[i + 1] : fallback;
}

void emit (const juce::String& line)
{
    std::printf ("%s\n", line.toRawUTF8());
    std::fflush (stdout);
}

juce::String q (const juce::String& s) { return juce::JSON::toString (juce::var (s)); }

} // namespace

int main (int argc, char* argv[])
{
    juce::StringArray args;
    for (int i = 1; i < argc; ++i)
        args.add (argv[i]);
    if (args.size() < 2)
    {
        std::fprintf (stderr, "usage: genredream_score_host PLUGIN.vst3 INPUT.wav [--block N] [--realtime 0|1] [--out OUT.wav]\n");
        return 2;
    }
    const juce::ScopedJuceInitialiser_GUI juceInit;
    const int block = arg (args, "--block", "512").getIntValue();
    const bool realtime = arg (args, "--realtime", "1").getIntValue() != 0;

    juce::AudioFormatManager formats;
    formats.registerBasicFormats();
    std::unique_ptr<juce::AudioFormatReader> reader (formats.createReaderFor (juce::File::getCurrentWorkingDirectory().getChildFile (args[1])));
    if (reader == nullptr)
    {
        std::fprintf (stderr, "genredream_score_host: cannot read %s\n", args[1].toRawUTF8());
        return 1;
    }
    const double rate = reader->sampleRate;
    const int total = (int) reader->lengthInSamples;
    juce::AudioBuffer<float> input (2, total);
    reader->read (&input, 0, total, 0, true, true);

    juce::VST3PluginFormat vst3;
    juce::OwnedArray<juce::PluginDescription> types;
    const auto pluginPath = juce::File::getCurrentWorkingDirectory().getChildFile (args[0]).getFullPathName();
    vst3.findAllTypesForFile (types, pluginPath);
    if (types.isEmpty())
    {
        std::fprintf (stderr, "genredream_score_host: no VST3 plugin in %s\n", pluginPath.toRawUTF8());
        return 1;
    }
    juce::String error;
    auto plugin = vst3.createInstanceFromDescription (*types[0], rate, block, error);
    if (plugin == nullptr)
    {
        std::fprintf (stderr, "genredream_score_host: %s\n", error.toRawUTF8());
        return 1;
    }
    plugin->setPlayConfigDetails (2, 2, rate, block);
    plugin->setNonRealtime (! realtime);
    plugin->prepareToPlay (rate, block);

    auto& params = plugin->getParameters();
    std::vector<float> last;   // only moves are printed, not the values at load
    for (auto* p : params)
        last.push_back (p->getValue());
    emit ("{\"event\":\"loaded\",\"latency\":" + juce::String (plugin->getLatencySamples()) + ",\"parameters\":" + juce::String (params.size()) + "}");

    juce::AudioBuffer<float> out (2, total);
    juce::AudioBuffer<float> buffer (2, block);
    juce::MidiBuffer midi;
    std::vector<double> times;
    int reportedLatency = plugin->getLatencySamples();
    const double t0 = juce::Time::getMillisecondCounterHiRes();
    for (int pos = 0; pos < total; pos += block)
    {
        const int n = juce::jmin (block, total - pos);
        buffer.setSize (2, n, false, false, true);
        for (int c = 0; c < 2; ++c)
            buffer.copyFrom (c, 0, input, c, pos, n);
        midi.clear();
        const double start = juce::Time::getMillisecondCounterHiRes();
        plugin->processBlock (buffer, midi);
        times.push_back (juce::Time::getMillisecondCounterHiRes() - start);
        for (int c = 0; c < 2; ++c)
            out.copyFrom (c, pos, buffer, c, 0, n);

        const double t = (double) (pos + n) / rate;
        for (const auto meta : midi)
        {
            const auto m = meta.getMessage();
            if (m.isController())
                emit ("{\"event\":\"cc\",\"t\":" + juce::String (t, 4) + ",\"cc\":" + juce::String (m.getControllerNumber())
                      + ",\"value\":" + juce::String (m.getControllerValue()) + "}");
        }
        // Let the host's parameter dispatcher run, at real-time pace.
        const double due = t0 + t * 1000.0;
        juce::MessageManager::getInstance()->runDispatchLoopUntil (realtime ? juce::jmax (0, (int) (due - juce::Time::getMillisecondCounterHiRes())) : 0);
        for (int i = 0; i < params.size(); ++i)
        {
            const auto name = params[i]->getName (64);
            const float v = params[i]->getValue();
            if (name.startsWith ("score ") && std::abs (v - last[(size_t) i]) > 1.0e-6f)
            {
                last[(size_t) i] = v;
                emit ("{\"event\":\"score\",\"t\":" + juce::String (t, 4) + ",\"param\":" + q (name) + ",\"value\":" + juce::String (v, 6) + "}");
            }
        }
        if (plugin->getLatencySamples() != reportedLatency)
        {
            reportedLatency = plugin->getLatencySamples();
            emit ("{\"event\":\"latency\",\"t\":" + juce::String (t, 4) + ",\"latency\":" + juce::String (reportedLatency) + "}");
        }
    }
    plugin->releaseResources();

    std::sort (times.begin(), times.end());
    auto pct = [&] (double p) { return times.empty() ? 0.0 : times[juce::jmin (times.size() - 1, (size_t) (p * (double) times.size()))]; };
    emit ("{\"event\":\"timing\",\"block\":" + juce::String (block) + ",\"blocks\":" + juce::String ((int) times.size())
          + ",\"p50_ms\":" + juce::String (pct (0.5), 5) + ",\"p99_ms\":" + juce::String (pct (0.99), 5)
          + ",\"max_ms\":" + juce::String (times.empty() ? 0.0 : times.back(), 5) + ",\"latency\":" + juce::String (reportedLatency) + "}");

    if (const auto outPath = arg (args, "--out", {}); outPath.isNotEmpty())
    {
        juce::WavAudioFormat wav;
        auto file = juce::File::getCurrentWorkingDirectory().getChildFile (outPath);
        file.deleteFile();
        std::unique_ptr<juce::AudioFormatWriter> writer (wav.createWriterFor (file.createOutputStream().release(), rate, 2, 32, {}, 0));
        if (writer != nullptr)
            writer->writeFromAudioSampleBuffer (out, 0, total);
    }
    plugin.reset();
    return 0;
}
