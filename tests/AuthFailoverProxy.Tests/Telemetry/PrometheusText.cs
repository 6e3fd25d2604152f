using System.Globalization;
using System.Text;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>One sample of a Prometheus text exposition: <c>name{label="value",…} value [timestamp]</c>.</summary>
internal sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string? this[string label] => Labels.GetValueOrDefault(label);
}

/// <summary>A scrape of <c>/metrics</c>, parsed just enough to assert on samples by name and labels.</summary>
internal sealed class PrometheusText
{
    private PrometheusText(string text, List<PrometheusSample> samples)
    {
        Text = text;
        Samples = samples;
    }

    public string Text { get; }

    public IReadOnlyList<PrometheusSample> Samples { get; }

    public static PrometheusText Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var i = 0;
            while (i < line.Length && line[i] != '{' && line[i] != ' ')
            {
                i++;
            }

            var name = line[..i];
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (i < line.Length && line[i] == '{')
            {
                i++;
                while (line[i] != '}')
                {
                    var equals = line.IndexOf('=', i);
                    var label = line[i..equals].Trim(',', ' ');
                    i = equals + 2; // past ="
                    var value = new StringBuilder();
                    while (line[i] != '"')
                    {
                        if (line[i] == '\\')
                        {
                            i++;
                            value.Append(line[i] == 'n' ? '\n' : line[i]);
                        }
                        else
                        {
                            value.Append(line[i]);
                        }

                        i++;
                    }

                    labels[label] = value.ToString();
                    i++; // past the closing quote
                    if (line[i] == ',')
                    {
                        i++;
                    }
                }

                i++; // past }
            }

            var parts = line[i..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var number = parts[0] switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            samples.Add(new PrometheusSample(name, labels, number));
        }

        return new PrometheusText(text, samples);
    }

    /// <summary>Returns the samples named <paramref name="name"/> whose labels include every pair given.</summary>
    public IEnumerable<PrometheusSample> Find(string name, params (string Label, string Value)[] labels)
        => Samples.Where(s => s.Name == name && labels.All(l => s[l.Label] == l.Value));

    /// <summary>Returns the value of the one sample matching, or null when there is none.</summary>
    public double? Value(string name, params (string Label, string Value)[] labels)
        => Find(name, labels).SingleOrDefault()?.Value;
}
