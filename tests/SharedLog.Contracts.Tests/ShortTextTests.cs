namespace SharedLog.Contracts.Tests;

public class ShortTextTests
{
    [Fact]
    public void A_text_within_the_limit_is_kept_and_a_longer_one_keeps_its_start_and_end()
    {
        Assert.Equal("abc", ShortText.Cut("abc", 3));
        string cut = ShortText.Cut(string.Concat(Enumerable.Range(0, 100).Select(i => (char)('a' + (i % 26)))), 11);
        Assert.Equal("abc…pqrstuv", cut);
    }

    [Fact]
    public void A_surrogate_pair_at_either_cut_is_left_whole()
    {
        // From a review of the reason cut: a lone half of a pair becomes U+FFFD when the reason is written as a UTF-8 header.
        const string pair = "\U0001F600";
        string text = string.Concat(Enumerable.Repeat(pair, 50));

        string cut = ShortText.Cut(text, 21);

        Assert.True(cut.Length <= 21);
        Assert.Equal(cut, System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(cut)));
        Assert.StartsWith(pair, cut, StringComparison.Ordinal);
        Assert.EndsWith(pair, cut, StringComparison.Ordinal);
    }
}
